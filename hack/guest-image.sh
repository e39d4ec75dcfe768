#!/usr/bin/env bash
# Builds the real-kernel guest of the simulator (pkg/cloudsim/qemu): a
# Debian cloud kernel and an initramfs holding the node plugin, the tools a
# CloudSigma Linux guest has, and the agent that carries CSI to the host.
#
#   hack/guest-image.sh OUT_DIR [DRIVER_BINARY]
#
# DRIVER_BINARY defaults to a CGO_ENABLED=0 build of ./cmd/cloudsigma-csi-driver.
# OUT_DIR gets vmlinuz, initrd.img (symlinks into the cache) and image.env.
#
# What is in it, and from where:
#   kernel   the package linux-image-cloud-amd64 depends on (6.1 cloud
#            kernel), fetched with apt-get download and unpacked with
#            dpkg-deb -x in a temporary directory: never installed on the
#            host. Built in: ext4, 8250 serial, PCIe hot-plug, devtmpfs.
#   modules  virtio_pci (+ modern/legacy helpers), virtio_blk,
#            virtio_console (the agent's port), xfs (+ libcrc32c), with
#            modules.dep from busybox depmod (the host has no kmod).
#   tools    the host's own Debian binaries with their shared libraries
#            (ldd): util-linux mount/umount/blkid/blockdev/findmnt/wipefs/
#            fsck, e2fsprogs mkfs.ext4/e2fsck/resize2fs/tune2fs/dumpe2fs,
#            xfsprogs mkfs.xfs/xfs_growfs/xfs_repair/xfs_io/xfs_db/fsck.xfs;
#            everything else (sh, init, modprobe, mdev) is busybox-static.
#            hack/install-tools.sh installs all of them.
#   by-id    no systemd-udevd: busybox mdev, run for every device event
#            (busybox uevent on the kernel's netlink socket), makes the
#            links udev's 60-persistent-storage rules make for virtio
#            disks, /dev/disk/by-id/virtio-<serial> (and -partN), from
#            /sys/block/vdX/serial. udevd would need
#            systemd's libraries, its rules and a daemon for one rule; and
#            the node does not depend on the links anyway (pkg/device scans
#            /sys/block/*/serial and repairs a missing link). With the links
#            made as udev makes them, the guest exercises the finder's
#            first path (link, then proof) as a CloudSigma guest does.
#            Without udevadm, the finder's udev trigger is a no-op.
#   agent    hack/guest-agent: serves the virtio-serial port that carries
#            CSI connections and commands (the guest has no network).
#   init     busybox init: /init mounts and loads modules, then
#            /etc/inittab keeps the agent and the node plugin
#            (--mode node, node ID from the server context on /dev/ttyS1)
#            running. Extra node plugin flags come from the kernel command
#            line: csi.args=--flag=value,--other=value.
#
# Cached in $GUEST_CACHE (default /var/cache/cloudsigma-csi-guest), outside
# the repository, under a hash of this script, the driver and agent
# binaries, the kernel package version and the versions of the host
# packages the tools come from; the last few builds are kept. The kernel
# .deb is kept too, so a rebuild for a new driver downloads nothing.
set -euo pipefail
start=$(date +%s%N)
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: $0 OUT_DIR [DRIVER_BINARY]}
driver=${2:-}
cache=${GUEST_CACHE:-/var/cache/cloudsigma-csi-guest}
mkdir -p "$out"
mkdir -p "$cache/debs" 2>/dev/null && [ -w "$cache" ] ||
	{ echo "[guest-image] cannot write $cache: run as root or set GUEST_CACHE" >&2; exit 1; }
out=$(cd "$out" && pwd)

log() { printf '[guest-image] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
elapsed() { echo "$(( ($(date +%s%N) - start) / 1000000 ))ms"; }

for tool in busybox dpkg-deb apt-get apt-cache ldd go; do
	command -v "$tool" >/dev/null || die "$tool is missing (hack/install-tools.sh installs busybox-static)"
done
ldd "$(command -v busybox)" >/dev/null 2>&1 && die "$(command -v busybox) is not static: install busybox-static"

tmp=$(mktemp -d /tmp/guest-image.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# --- Binaries ------------------------------------------------------------------
if [ -z "$driver" ]; then
	driver=$tmp/cloudsigma-csi-driver
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$driver" ./cmd/cloudsigma-csi-driver)
fi
[ -x "$driver" ] || die "driver binary $driver is missing"
file -b "$driver" 2>/dev/null | grep -q 'dynamically linked' && die "$driver is dynamically linked: build it with CGO_ENABLED=0"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$tmp/guest-agent" ./hack/guest-agent)

# --- Inputs and the cache key --------------------------------------------------
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kpkg" ] || die "apt knows no linux-image-cloud-amd64: run apt-get update"
kver=$(apt-cache show --no-all-versions "$kpkg" | awk '/^Version:/ { print $2; exit }')
release=${kpkg#linux-image-}
tools=(mount umount blkid blockdev findmnt wipefs fsck
	e2fsck fsck.ext4 fsck.ext3 mke2fs mkfs.ext4 mkfs.ext3 resize2fs tune2fs dumpe2fs
	mkfs.xfs xfs_growfs xfs_repair xfs_io xfs_db fsck.xfs)
modules=(virtio_pci virtio_blk virtio_console xfs)
hostpkgs=(util-linux mount e2fsprogs xfsprogs libc6 busybox-static)
versions=$(dpkg-query -W -f='${Package}=${Version}\n' "${hostpkgs[@]}") ||
	die "missing host packages (hack/install-tools.sh installs them): ${hostpkgs[*]}"
key=$({
	sha256sum "$0" "$driver" "$tmp/guest-agent" | cut -d' ' -f1
	echo "$kpkg=$kver" "${tools[*]}" "${modules[*]}"
	echo "$versions"
} | sha256sum | cut -c1-16)
dir=$cache/$key

link_out() {
	ln -sfn "$dir/vmlinuz" "$out/vmlinuz"
	ln -sfn "$dir/initrd.img" "$out/initrd.img"
	cp "$dir/image.env" "$out/image.env"
}
if [ -s "$dir/initrd.img" ] && [ -s "$dir/vmlinuz" ] && [ -s "$dir/image.env" ]; then
	link_out
	log "cached $key ($kpkg $kver) in $(elapsed)"
	exit 0
fi
log "building $key: $kpkg $kver"

# --- Kernel and modules --------------------------------------------------------
deb=$cache/debs/${kpkg}_${kver//:/%3a}_amd64.deb
if [ ! -s "$deb" ]; then
	# apt-get download writes into the current directory; as root it
	# warns that _apt cannot write there, harmlessly.
	(cd "$tmp" && apt-get download -q "$kpkg=$kver" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
	mv "$tmp"/"${kpkg}"_*.deb "$deb" 2>/dev/null || die "apt-get download $kpkg=$kver failed"
	find "$cache/debs" -name "${kpkg%%-[0-9]*}-*.deb" ! -path "$deb" -delete
fi
dpkg-deb -x "$deb" "$tmp/kernel"
kmods=$tmp/kernel/lib/modules/$release
[ -d "$kmods" ] || die "no modules for $release in $deb"

rootfs=$tmp/rootfs
mkdir -p "$rootfs"/{usr/bin,usr/sbin,usr/lib,usr/lib64,etc,proc,sys,dev,run,tmp,var/lib,root,mnt}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$rootfs/$d"; done

# Modules: the named ones and what they need, by the depends field of their
# .modinfo section (busybox modinfo wants a modules.dep to start from).
mroot=$rootfs/lib/modules/$release
mkdir -p "$mroot"
cp "$kmods"/modules.order "$kmods"/modules.builtin "$kmods"/modules.builtin.modinfo "$mroot/"
declare -A have=()
add_module() {
	local name=${1//-/_} path dep
	[ -n "${have[$name]:-}" ] && return
	have[$name]=1
	path=$(find "$kmods/kernel" -name "$name.ko" -o -name "${name//_/-}.ko" | head -1)
	if [ -z "$path" ]; then
		grep -qE "/${name//_/[-_]}\.ko$" "$kmods/modules.builtin" && return
		die "module $name is neither in $kpkg nor built in"
	fi
	mkdir -p "$mroot/$(dirname "${path#"$kmods/"}")"
	cp "$path" "$mroot/${path#"$kmods/"}"
	for dep in $(busybox strings "$path" | sed -n 's/^depends=//p' | tr ',' ' '); do add_module "$dep"; done
}
for m in "${modules[@]}"; do add_module "$m"; done
busybox depmod -b "$rootfs" "$release"
[ -s "$mroot/modules.dep" ] || die "busybox depmod wrote no modules.dep"

# --- Tools ---------------------------------------------------------------------
# copy_file SRC: into the same path under rootfs (bin, sbin, lib and lib64
# are links into usr there, as on Debian 12), following symlinks.
copy_file() {
	local src=$1 dst
	dst=$rootfs/$(realpath -s "$src")
	[ -e "$dst" ] && return
	mkdir -p "$(dirname "$dst")"
	cp -L "$src" "$dst"
}
for t in "${tools[@]}"; do
	bin=$(command -v "$t") || die "$t is missing (hack/install-tools.sh installs it)"
	copy_file "$bin"
	if head -c4 "$bin" | grep -q ELF; then
		for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do copy_file "$lib"; done
	fi
done
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$rootfs/etc/"
cp "$(command -v busybox)" "$rootfs/usr/bin/busybox"
# busybox applets for every name the real tools above do not take.
for applet in $(busybox --list-full); do
	[ -e "$rootfs/$applet" ] || [ -L "$rootfs/$applet" ] || ln -s /usr/bin/busybox "$rootfs/$applet"
done
install -m 0755 "$driver" "$rootfs/usr/bin/cloudsigma-csi-driver"
install -m 0755 "$tmp/guest-agent" "$rootfs/usr/bin/guest-agent"

# --- Init ----------------------------------------------------------------------
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
ln -s /proc/self/mounts "$rootfs/etc/mtab"

cat >"$rootfs/init" <<'EOF'
#!/bin/sh
# PID 1 until busybox init takes over (hack/guest-image.sh).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts /dev/disk/by-id /run/csi /var/lib/kubelet
echo "guest: init at $(cut -d' ' -f1 /proc/uptime)s"
# mdev runs for every device event from now on (busybox uevent listens on
# the kernel's netlink socket: the Debian kernel has no uevent helper);
# mdev -s handles the devices that came before.
uevent mdev &
modprobe -a virtio_pci virtio_blk virtio_console || echo "guest: modprobe failed"
# xfs (the biggest module) loads while the rest of the guest comes up.
modprobe xfs &
mdev -s
echo "guest: modules loaded at $(cut -d' ' -f1 /proc/uptime)s"
exec /sbin/init
EOF
chmod 0755 "$rootfs/init"

cat >"$rootfs/etc/inittab" <<'EOF'
::respawn:/usr/bin/guest-agent
::respawn:/etc/csi-node
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
EOF

cat >"$rootfs/etc/csi-node" <<'EOF'
#!/bin/sh
# The node plugin, as a DaemonSet runs it: node ID from the server context
# (/dev/ttyS1). Extra flags: csi.args=--a=b,--c=d on the kernel command line.
args=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^csi\.args=//p' | tr ',' ' ')
echo "guest: node plugin starting at $(cut -d' ' -f1 /proc/uptime)s: $args"
/usr/bin/cloudsigma-csi-driver --mode node --endpoint unix:///run/csi/csi.sock $args
echo "guest: node plugin exited with status $?"
sleep 1
EOF
chmod 0755 "$rootfs/etc/csi-node"

# mdev: device nodes as devtmpfs makes them, plus the by-id links.
printf '%s\n' 'vd[a-z]+[0-9]* 0:0 660 */etc/mdev-by-id' >"$rootfs/etc/mdev.conf"
cat >"$rootfs/etc/mdev-by-id" <<'EOF'
#!/bin/sh
# What udev's 60-persistent-storage.rules make for a virtio disk:
# /dev/disk/by-id/virtio-<serial>, and virtio-<serial>-partN for its
# partitions, pointing at ../../vdX. A disk without a serial gets none.
dir=/dev/disk/by-id
disk=${MDEV%%[0-9]*}
part=
[ "$disk" != "$MDEV" ] && part=-part${MDEV#"$disk"}
case $ACTION in
remove)
	for l in "$dir"/*; do
		[ "$(readlink "$l")" = "../../$MDEV" ] && rm -f "$l"
	done
	;;
*)
	serial=$(tr ' ' _ <"/sys/block/$disk/serial" 2>/dev/null)
	[ -n "$serial" ] || exit 0
	mkdir -p "$dir"
	ln -sfn "../../$MDEV" "$dir/virtio-$serial$part"
	;;
esac
EOF
chmod 0755 "$rootfs/etc/mdev-by-id"

# --- Pack ----------------------------------------------------------------------
# Uncompressed: the guest unpacks it faster under software emulation than
# it would decompress it.
mkdir -p "$cache/build.$key.$$"
build=$cache/build.$key.$$
(cd "$rootfs" && find . | busybox cpio -o -H newc >"$build/initrd.img" 2>/dev/null)
cp "$tmp/kernel/boot/vmlinuz-$release" "$build/vmlinuz"
cat >"$build/image.env" <<EOF
GUEST_IMAGE_KEY=$key
GUEST_KERNEL_PACKAGE=$kpkg
GUEST_KERNEL_VERSION=$kver
GUEST_KERNEL_RELEASE=$release
EOF
rm -rf "$dir"
mv "$build" "$dir"
# Keep the three newest builds.
ls -1dt "$cache"/*/ 2>/dev/null | grep -v '/debs/$' | tail -n +4 | xargs -r rm -rf
link_out
log "built $key in $(elapsed): initrd $(du -h "$dir/initrd.img" | cut -f1), kernel $(du -h "$dir/vmlinuz" | cut -f1)"
