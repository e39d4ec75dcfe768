//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// cloudEmpty: no drives and no snapshots left in the simulator.
func (e *env) cloudEmpty(ctx context.Context) error {
	drives, err := e.cloud.ListDrives(ctx, cloudsigma.Filter{})
	if err != nil {
		return err
	}
	snaps, err := e.cloud.ListSnapshots(ctx, cloudsigma.Filter{})
	if err != nil {
		return err
	}
	if len(drives)+len(snaps) > 0 {
		var names []string
		for _, d := range drives {
			names = append(names, "drive "+d.Name+" ("+d.Status+")")
		}
		for _, s := range snaps {
			names = append(names, "snapshot "+s.Name)
		}
		return fmt.Errorf("left in the cloud: %s", strings.Join(names, ", "))
	}
	return nil
}

// mountPoints lists every mount point of this mount namespace.
func mountPoints() []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			points = append(points, unescapeMount(f[4]))
		}
	}
	return points
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// statLink finds the simulator's guest device link for a drive: virtio-
// and the first 20 characters of its UUID, as virtio-blk serials are cut.
func statLink(dir, handle string) (os.FileInfo, error) {
	return os.Lstat(linkPath(dir, handle))
}

func linkPath(dir, handle string) string {
	serial := handle
	if len(serial) > 20 {
		serial = serial[:20]
	}
	return filepath.Join(dir, "virtio-"+serial)
}

// forceTeardown unmounts whatever a failed run left under the work
// directory, innermost first, so the simulator can free its loop devices.
func (e *env) forceTeardown() {
	points := mountPoints()
	slices.Reverse(points)
	for _, p := range points {
		if strings.HasPrefix(p, e.work+"/") {
			if out, err := exec.Command("umount", p).CombinedOutput(); err != nil {
				fmt.Printf("umount %s: %v: %s\n", p, err, out)
			}
		}
	}
}

// leaks lists what the run left on the machine once every process ended:
// mounts under the work directory, loop devices over the simulator's drive
// files, guest device links.
func (e *env) leaks() []string {
	var leaks []string
	for _, p := range mountPoints() {
		if strings.HasPrefix(p, e.work+"/") {
			leaks = append(leaks, "mount "+p)
		}
	}
	out, err := exec.Command("losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE").Output()
	if err != nil {
		leaks = append(leaks, "losetup: "+err.Error())
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, e.dataDir) {
			leaks = append(leaks, "loop device "+strings.TrimSpace(line))
		}
	}
	for _, n := range []*kubeNode{e.home, e.other} {
		leaks = append(leaks, guestLinks(n.devDir)...)
		// The emulated guest's own /sys/block: a link per device it sees.
		leaks = append(leaks, guestLinks(filepath.Join(n.devDir, virtio.EmulatedBlockDir))...)
	}
	return leaks
}

// guestLinks lists the device links left in an emulated guest's directory.
// The simulator's own entries are not devices: the guest's declaration,
// its server-context port and its block directory stay while the
// simulator runs and go when it closes.
func guestLinks(dir string) []string {
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, l := range entries {
		switch l.Name() {
		case virtio.EmulatedGuestMarker, virtio.EmulatedContextPort, virtio.EmulatedBlockDir:
			continue
		}
		left = append(left, "device link "+filepath.Join(dir, l.Name()))
	}
	return left
}
