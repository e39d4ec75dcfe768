package device

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// record is what the node remembers of a drive it identified by evidence:
// the device instance, named by its kernel name, number and disk sequence
// number. Linux (5.15+) gives every new device instance, and every media
// change of a loop device, a diskseq never reused until reboot; the boot ID
// covers reboots. So a record is valid exactly while that instance exists:
// a detach, a re-attach, a reboot or a rename each end it, and the drive is
// identified again from scratch. A record is never evidence that a new
// device is the drive. Records are not dropped at unstage: a re-stage
// before the detach finds the device by its record, while the content the
// controller read at publish may have changed since (a new file system).
type record struct {
	Boot    string `json:"boot"`
	Device  string `json:"device"` // name in SysDir/block
	Dev     string `json:"dev"`    // "major:minor"
	Diskseq string `json:"diskseq"`
}

// DefaultStateDir keeps the records when VirtioFinder.StateDir is empty.
const DefaultStateDir = "/run/cloudsigma-csi/identity"

func (f *VirtioFinder) recordPath(driveUUID string) string {
	return filepath.Join(or(f.StateDir, DefaultStateDir), strings.ToLower(driveUUID)+".json")
}

// bootID names this boot of the kernel.
func (f *VirtioFinder) bootID() (string, error) {
	return readSysfs(filepath.Join(or(f.ProcDir, "/proc"), "sys", "kernel", "random", "boot_id"))
}

// instance reads what makes a record of the device named name now.
func (f *VirtioFinder) instance(name string) (record, error) {
	boot, err := f.bootID()
	if err != nil {
		return record{}, err
	}
	dev, err := readSysfs(filepath.Join(f.sysBlock(name), "dev"))
	if err != nil {
		return record{}, err
	}
	seq, err := readSysfs(filepath.Join(f.sysBlock(name), "diskseq"))
	if err != nil || seq == "" {
		return record{}, fmt.Errorf("%s has no diskseq (Linux 5.15 or later gives every device instance one; "+
			"without it a re-attached drive could not be told from the one identified before): %v", name, err)
	}
	return record{Boot: boot, Device: name, Dev: dev, Diskseq: seq}, nil
}

// remember writes the record of driveUUID's device.
func (f *VirtioFinder) remember(driveUUID string, r record) error {
	dir := or(f.StateDir, DefaultStateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	tmp := f.recordPath(driveUUID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, f.recordPath(driveUUID))
}

// recalled is the device of driveUUID's record if that device instance
// still exists, else "".
func (f *VirtioFinder) recalled(driveUUID string) string {
	b, err := os.ReadFile(f.recordPath(driveUUID))
	if err != nil {
		return ""
	}
	var r record
	if json.Unmarshal(b, &r) != nil || r.Device == "" {
		return ""
	}
	now, err := f.instance(r.Device)
	if err != nil || now != r {
		return ""
	}
	return r.Device
}

// recalledAll maps device name -> drive UUID for every valid record.
func (f *VirtioFinder) recalledAll() map[string]string {
	out := map[string]string{}
	entries, err := os.ReadDir(or(f.StateDir, DefaultStateDir))
	if err != nil {
		return out
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if dev := f.recalled(id); dev != "" {
			out[dev] = id
		} else {
			// Its device instance is gone for good (diskseq is not
			// reused before a reboot, which changes the boot ID).
			_ = os.Remove(filepath.Join(or(f.StateDir, DefaultStateDir), e.Name()))
		}
	}
	return out
}
