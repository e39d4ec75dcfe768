package device

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

// UdevTrigger asks udev to replay block device events and waits for it to
// settle, so a late or lost hot-plug event still produces its by-id link.
// Without udevadm (minimal containers) it does nothing: the sysfs scan
// covers that case.
func UdevTrigger(ctx context.Context) error {
	udevadm, err := exec.LookPath("udevadm")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, udevadm, "trigger", "--subsystem-match=block", "--action=change").CombinedOutput(); err != nil {
		return fmt.Errorf("udevadm trigger: %v: %s", err, out)
	}
	if out, err := exec.CommandContext(ctx, udevadm, "settle", "--timeout=5").CombinedOutput(); err != nil {
		return fmt.Errorf("udevadm settle: %v: %s", err, out)
	}
	return nil
}
