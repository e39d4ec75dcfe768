package node

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/klog/v2"
	mount "k8s.io/mount-utils"
	utilexec "k8s.io/utils/exec"
)

// grow extends a mounted filesystem to its device; a no-op when it already
// fills it.
func (s *Service) grow(dev, mountPath string) error {
	_, err := s.cfg.Resizer.Resize(dev, mountPath)
	return err
}

// growUnmounted grows an ext2/3/4 filesystem to its device before it is
// mounted. A restore or clone into a bigger drive carries its source's
// smaller filesystem; growing it offline needs no CAP_SYS_RESOURCE (online
// resize2fs does) and leaves nothing to do once mounted. XFS only grows
// mounted, so it is left to grow.
func (s *Service) growUnmounted(dev, existing string) error {
	if !strings.HasPrefix(existing, "ext") {
		return nil
	}
	need, err := mount.NewResizeFs(s.cfg.Mounter.Exec).NeedResize(dev, "")
	if err != nil || !need {
		return err
	}
	// resize2fs refuses an unmounted filesystem that was not checked since
	// its last mount (a snapshot of a mounted volume never was). Preen mode
	// fixes only what is safe and fails on anything else.
	if out, err := s.cfg.Mounter.Exec.Command("e2fsck", "-f", "-p", dev).CombinedOutput(); err != nil {
		var exitErr utilexec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitStatus() > 1 { // 1: errors corrected
			return fmt.Errorf("checking %s before growing it: %v: %s", dev, err, strings.TrimSpace(string(out)))
		}
	}
	if out, err := s.cfg.Mounter.Exec.Command("resize2fs", dev).CombinedOutput(); err != nil {
		return fmt.Errorf("growing %s: %v: %s", dev, err, strings.TrimSpace(string(out)))
	}
	klog.InfoS("Grew filesystem to its device before mounting", "device", dev, "fsType", existing)
	return nil
}
