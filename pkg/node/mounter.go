package node

import (
	"slices"
	"strings"

	mobymount "github.com/moby/sys/mount"
	"k8s.io/klog/v2"
	mount "k8s.io/mount-utils"

	"github.com/cloudsigma-csi/driver/pkg/device"
)

// DirectMounter mounts a block device's file system with mount(2) instead
// of running mount(8): stage's mount is then a system call, not a process
// (about 60 ms in a small guest, and a systemd-run scope on a systemd
// host, which a kernel file system on a block device does not need). Any
// other mount (bind, remount, options with secrets, no file system type)
// and any mount the kernel refuses go to the wrapped mounter, so mount(8)
// still handles the options only it knows and words the errors.
type DirectMounter struct {
	mount.Interface
}

// Mount implements mount.Interface.
func (m DirectMounter) Mount(source, target, fstype string, options []string) error {
	return m.MountSensitive(source, target, fstype, options, nil)
}

// MountSensitive implements mount.Interface.
func (m DirectMounter) MountSensitive(source, target, fstype string, options, sensitive []string) error {
	// Options may come joined ("noatime,nodiscard"); each is judged alone.
	var opts []string
	for _, o := range options {
		opts = append(opts, strings.Split(o, ",")...)
	}
	if fstype == "" || len(sensitive) > 0 || slices.ContainsFunc(opts, notForDirect) || !isBlockDevice(source) {
		return m.Interface.MountSensitive(source, target, fstype, options, sensitive)
	}
	// "defaults" is mount(8)'s word for no options; moby's parser would
	// pass it to the kernel, which refuses it.
	opts = slices.DeleteFunc(opts, func(o string) bool { return o == "defaults" || o == "" })
	err := mobymount.Mount(source, target, fstype, strings.Join(opts, ","))
	if err == nil {
		klog.V(4).InfoS("Mounted with mount(2)", "source", source, "target", target, "fsType", fstype, "options", options)
		return nil
	}
	klog.V(4).InfoS("mount(2) refused, trying mount(8)", "source", source, "target", target, "err", err)
	return m.Interface.MountSensitive(source, target, fstype, options, sensitive)
}

// isBlockDevice: only a block device's file system is mounted directly
// (moby reads a source of "" or "none" as a remount request).
func isBlockDevice(source string) bool {
	info, err := device.Probe(source)
	return err == nil && info.Block && strings.HasPrefix(source, "/")
}

// notForDirect: options that change what the mount is (bind, remount,
// propagation), which mount-utils' own handling must see.
func notForDirect(opt string) bool {
	switch opt {
	case "bind", "rbind", "remount", "shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable":
		return true
	}
	return false
}
