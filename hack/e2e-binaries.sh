#!/usr/bin/env bash
# Builds the Kubernetes control plane and the CSI sidecars that tests/e2e
# runs, from the tools modules under hack/tools/ (pinned upstream releases
# built through the Go module proxy), and the snapshot CRDs.
#
#   hack/e2e-binaries.sh OUT_DIR
#
# Each binary is cached as $E2E_CACHE/<name>-<version>-<hash of go.mod and
# go.sum> (default /var/cache/cloudsigma-csi-e2e), outside the repository,
# so only the first run on a machine pays the build (kube-apiserver and
# kube-controller-manager take minutes each on 2 cores). OUT_DIR gets a
# symlink per binary, crds/ and the snapshot-controller's RBAC.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: $0 OUT_DIR}
cache=${E2E_CACHE:-/var/cache/cloudsigma-csi-e2e}
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)
export CGO_ENABLED=0

log() { printf '[e2e-binaries] %s\n' "$*" >&2; }

# build DIR NAME... : builds the tools NAME of hack/tools/DIR (all from one
# upstream module) in one go build, as they share most packages, unless cached.
build() {
	local dir=$1
	shift
	local mod=$root/hack/tools/$dir
	local json hash first version
	json=$(go mod edit -json "$mod/go.mod")
	hash=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-8)
	# The version of the required upstream module that provides the tools.
	first=$(jq -r --arg n "/$1" '.Tool[].Path | select(endswith($n))' <<<"$json")
	version=$(jq -r --arg p "$first" \
		'[.Require[] | select(.Path as $m | $p | startswith($m + "/"))] | max_by(.Path | length) | .Version' <<<"$json")
	local pkgs=() names=() name
	for name in "$@"; do
		ln -sfn "$cache/$name-$version-$hash" "$out/$name"
		[ -x "$cache/$name-$version-$hash" ] && continue
		names+=("$name")
		pkgs+=("$(jq -r --arg n "/$name" '.Tool[].Path | select(endswith($n))' <<<"$json")")
	done
	((${#names[@]})) || { log "$dir $version: cached"; return; }
	log "$dir $version: building ${names[*]} (cold: minutes)"
	# Version stamps as the upstream Makefiles set them.
	local ldflags="-s -w -X main.version=$version"
	if [ "$dir" = kubernetes ]; then
		local minor=${version#v1.}
		local v=k8s.io/component-base/version
		ldflags="-s -w -X $v.gitVersion=$version -X $v.gitMajor=1 -X $v.gitMinor=${minor%%.*}"
	fi
	local start tmp
	start=$(date +%s)
	tmp=$(mktemp -d "$cache/build.XXXXXX")
	# -mod=readonly: the committed go.sum is the whole truth, nothing is resolved anew.
	(cd "$mod" && go build -mod=readonly -buildvcs=false -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
	for name in "${names[@]}"; do
		mv "$tmp/$name" "$cache/$name-$version-$hash"
		# Older builds of this tool are dead weight (about 100 MB each).
		find "$cache" -maxdepth 1 -type f -name "$name-v*" ! -name "$name-$version-$hash" -delete
	done
	rmdir "$tmp"
	log "$dir $version: built in $(($(date +%s) - start))s"
}

build kubernetes kube-apiserver kube-controller-manager kubectl
build external-provisioner csi-provisioner
build external-attacher csi-attacher
build external-resizer csi-resizer
build external-snapshotter csi-snapshotter snapshot-controller

# The snapshot and group snapshot CRDs (snapshot-controller waits for both)
# and the snapshot-controller's RBAC, from the module cache, at the versions
# the tools module pins.
snap=$root/hack/tools/external-snapshotter
client=$(cd "$snap" && go mod download -json github.com/kubernetes-csi/external-snapshotter/client/v8 | jq -r .Dir)
main=$(cd "$snap" && go mod download -json github.com/kubernetes-csi/external-snapshotter/v8 | jq -r .Dir)
rm -rf "$out/crds" && mkdir -p "$out/crds"
cp "$client"/config/crd/*storage.k8s.io_*.yaml "$out/crds/"
cp "$main/deploy/kubernetes/snapshot-controller/rbac-snapshot-controller.yaml" "$out/"
chmod -R u+w "$out/crds" "$out/rbac-snapshot-controller.yaml"
log "binaries in $out"
