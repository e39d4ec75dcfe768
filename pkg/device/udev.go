package device

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

// UdevTrigger asks udev to re-announce one block device, given by its sysfs
// path (/sys/class/block/vdb), and waits for udev to settle, so a lost
// event of that device still produces its by-id link. It never replays the
// whole block subsystem: that would re-run every rule for every disk of the
// node, for one drive's sake. Without udevadm (minimal containers) it does
// nothing: the finder's sysfs scan covers that case.
func UdevTrigger(ctx context.Context, sysPath string) error {
	udevadm, err := exec.LookPath("udevadm")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, udevadm, "trigger", "--action=change", sysPath).CombinedOutput(); err != nil {
		return fmt.Errorf("udevadm trigger %s: %v: %s", sysPath, err, out)
	}
	if out, err := exec.CommandContext(ctx, udevadm, "settle", "--timeout=5").CombinedOutput(); err != nil {
		return fmt.Errorf("udevadm settle: %v: %s", err, out)
	}
	return nil
}
