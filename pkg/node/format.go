package node

import (
	mount "k8s.io/mount-utils"
)

// formatAndMountBlank makes a filesystem on a device that checkFormat's
// probe found blank, and mounts it. It is mount-utils' FormatAndMount
// without its second probe of the same device (checkFormat's is the "does
// it hold data" check, made under the volume's lock) and with the same mkfs
// arguments (quiet: its progress output costs time and nobody reads it;
// errors still come) and errors, so formatError reads them alike. A filesystem just
// made fills its device: the caller needs no grow, and no fsck.
func (s *Service) formatAndMountBlank(dev, staging, fsType string, opts, fmtOpts []string) error {
	args := []string{dev}
	switch fsType {
	case "ext3", "ext4":
		args = []string{"-q", "-F", "-m0", dev} // force; no blocks reserved for root
	case "xfs":
		args = []string{"-q", "-f", dev}
	}
	args = append(append([]string(nil), fmtOpts...), args...)
	opts = append(append([]string(nil), opts...), "defaults")
	if out, err := s.cfg.Mounter.Exec.Command("mkfs."+fsType, args...).CombinedOutput(); err != nil {
		return mount.NewMountError(mount.FormatFailed, "format of disk %q failed: type:(%q) target:(%q) options:(%q) errcode:(%v) output:(%v) ",
			dev, fsType, staging, opts, err, string(out))
	}
	if err := s.cfg.Mounter.MountSensitive(dev, staging, fsType, opts, nil); err != nil {
		return mount.NewMountError(mount.UnknownMountError, "%s", err.Error())
	}
	return nil
}
