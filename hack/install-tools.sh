#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian 12 machine; CI runs it
# before `make test`. Idempotent: a second run installs nothing and only prints
# versions.
#
#   OS packages (only the missing ones): e2fsprogs xfsprogs util-linux mount udev
#   etcd-server jq qemu-system-x86 busybox-static
#     mkfs.ext4/resize2fs, mkfs.xfs/xfs_growfs, blkid/findmnt/blockdev,
#     mount/losetup (package "mount" in bookworm), udevadm; etcd for the e2e
#     suite's API server, jq for hack/e2e-binaries.sh; QEMU (no recommends:
#     no GUI, no OVMF) for the real-kernel guest of make e2e-guest, and a
#     static busybox for its initramfs (sh, cpio, depmod: hack/guest-image.sh)
#   Go tools, pinned, built with `go install` into $(go env GOPATH)/bin:
#     helm        chart lint/render in tests/packaging
#     kustomize   renders deploy/kubernetes in tests/packaging
#     csi-sanity  the CSI sanity suite as a command (make sanity-cli)
#     staticcheck the linter of make lint
#     govulncheck known-vulnerability check of make lint (hack/vulncheck.sh)
#
# With arguments, only the Go tools named are installed, and no OS packages:
# `make lint` runs `hack/install-tools.sh staticcheck`, which needs no root.
#
# Versions are pinned here and nowhere else. Each must build with the Go in
# go.mod (GOTOOLCHAIN=local): kustomize v5.8.3 already needs Go 1.27.
set -euo pipefail

HELM_VERSION=v3.22.0
KUSTOMIZE_VERSION=v5.8.2
CSI_SANITY_VERSION=v5.6.0 # keep equal to csi-test in go.mod
STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.2.2
GOVULNCHECK_VERSION=v1.10.0

OS_PACKAGES="e2fsprogs xfsprogs util-linux mount udev etcd-server jq qemu-system-x86 busybox-static"

log() { printf '[install-tools] %s\n' "$*" >&2; }

# --- OS packages -------------------------------------------------------------
install_os_packages() {
	local missing=() pkg
	for pkg in $OS_PACKAGES; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$pkg")
		fi
	done
	if ((${#missing[@]})); then
		local sudo=() start
		if [ "$(id -u)" != 0 ]; then
			command -v sudo >/dev/null || { log "need root (or sudo) to install: ${missing[*]}"; exit 1; }
			sudo=(sudo)
		fi
		log "apt-get install ${missing[*]}"
		start=$(date +%s)
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
		log "apt packages installed in $(($(date +%s) - start))s"
	else
		log "OS packages already installed"
	fi
}

# --- Go tools ----------------------------------------------------------------
command -v go >/dev/null || { log "go is not on PATH (expected /usr/local/go/bin)"; exit 1; }
gopath=$(go env GOPATH)
bindir="${gopath%%:*}/bin"
mkdir -p "$bindir"

# module_version prints the version of the main module a Go binary was built from.
module_version() { go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'; }

# install_tool NAME PACKAGE VERSION [go install flags...]
install_tool() {
	local name=$1 pkg=$2 version=$3
	shift 3
	local bin="$bindir/$name"
	if [ -x "$bin" ] && [ "$(module_version "$bin")" = "$version" ]; then
		log "$name $version already installed"
		return
	fi
	log "go install $pkg@$version"
	local start
	start=$(date +%s)
	# From / so that a go.work or go.mod around the caller plays no part.
	(cd / && GOBIN="$bindir" go install "$@" "$pkg@$version")
	log "$name $version installed in $(($(date +%s) - start))s"
}

# go_tool NAME installs one of the pinned Go tools.
go_tool() {
	case $1 in
	# -X: without it, a go-installed helm reports only "v3.22".
	helm) install_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
		-ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" ;;
	kustomize) install_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION" ;;
	csi-sanity) install_tool csi-sanity github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity "$CSI_SANITY_VERSION" ;;
	staticcheck) install_tool staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION" ;;
	govulncheck) install_tool govulncheck golang.org/x/vuln/cmd/govulncheck "$GOVULNCHECK_VERSION" ;;
	*) log "unknown tool $1 (helm, kustomize, csi-sanity, staticcheck, govulncheck)"; exit 2 ;;
	esac
}

# Only the Go tools named: no OS packages, no root, no report.
if (($#)); then
	for tool in "$@"; do go_tool "$tool"; done
	exit 0
fi

install_os_packages
for tool in helm kustomize csi-sanity staticcheck govulncheck; do go_tool "$tool"; done

# --- Report ------------------------------------------------------------------
log "versions:"
printf '  %-11s %s\n' \
	go "$(go env GOVERSION)" \
	helm "$("$bindir/helm" version --short)" \
	kustomize "$("$bindir/kustomize" version)" \
	csi-sanity "$(module_version "$bindir/csi-sanity")" \
	staticcheck "$("$bindir/staticcheck" -version | cut -d" " -f2-)" \
	govulncheck "$(module_version "$bindir/govulncheck")" \
	mkfs.ext4 "$(dpkg-query -W -f='${Version}' e2fsprogs)" \
	mkfs.xfs "$(dpkg-query -W -f='${Version}' xfsprogs)" \
	util-linux "$(dpkg-query -W -f='${Version}' util-linux)" \
	udevadm "$(dpkg-query -W -f='${Version}' udev)" \
	etcd "$(dpkg-query -W -f='${Version}' etcd-server)" \
	qemu "$(dpkg-query -W -f='${Version}' qemu-system-x86)" \
	busybox "$(dpkg-query -W -f='${Version}' busybox-static)" >&2
case ":$PATH:" in
*":$bindir:"*) ;;
*) log "add $bindir to PATH (the packaging tests also look there)" ;;
esac
