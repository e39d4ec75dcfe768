package device

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// record is what the node remembers of a drive it identified by evidence.
//
// The device instance: its kernel name, number and disk sequence number.
// Linux (5.15+) gives every new device instance, and every media change of
// a loop device, a diskseq never reused until reboot; the boot ID covers
// reboots. So the instance part is valid exactly while that instance
// exists: a detach, a re-attach, a reboot or a rename each end it, and the
// drive is identified again. It is never evidence that a new device is the
// drive. Records are not dropped at unstage: a re-stage before the detach
// finds the device by its record, while the content the controller read at
// publish may have changed since (the node formatted it).
//
// FS: the file system the node found on the drive's identified device
// after staging it (fsID: type and UUID). It outlives the instance: after
// a reboot the kubelet stages again with the publish_context of the
// original publish, whose digest may be of the blank drive the node has
// formatted since; the drive is then recognized by this file system, read
// on the drive while it was identified. A clone carries the same file
// system UUID: two candidates holding it are refused, never chosen.
type record struct {
	Boot    string `json:"boot"`
	Device  string `json:"device"` // name in SysDir/block
	Dev     string `json:"dev"`    // "major:minor"
	Diskseq string `json:"diskseq"`
	FS      string `json:"fs,omitempty"`
}

func (r record) instance() record { r.FS = ""; return r }

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

func (f *VirtioFinder) load(driveUUID string) (record, bool) {
	b, err := os.ReadFile(f.recordPath(driveUUID))
	if err != nil {
		return record{}, false
	}
	var r record
	return r, json.Unmarshal(b, &r) == nil
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
	r, ok := f.load(driveUUID)
	if !ok || r.Device == "" {
		return ""
	}
	now, err := f.instance(r.Device)
	if err != nil || now != r.instance() {
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
		} else if r, ok := f.load(id); !ok || r.FS == "" {
			// Its device instance is gone for good (diskseq is not
			// reused before a reboot, which changes the boot ID), and
			// it remembers no file system.
			_ = os.Remove(filepath.Join(or(f.StateDir, DefaultStateDir), e.Name()))
		}
	}
	return out
}

// Note remembers the file system on driveUUID's device dev (after stage
// mounted it), if dev is the instance identified as that drive. A drive
// identified by its serial has no record and needs none.
func (f *VirtioFinder) Note(driveUUID, dev string) error {
	r, ok := f.load(driveUUID)
	if !ok || f.recalled(driveUUID) != filepath.Base(dev) {
		return nil
	}
	head, err := readHead(dev, false)
	if err != nil {
		return err
	}
	if fs := fsID(head); fs != "" && fs != r.FS {
		r.FS = fs
		return f.remember(driveUUID, r)
	}
	return nil
}
