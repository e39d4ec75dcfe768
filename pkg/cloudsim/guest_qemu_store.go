package cloudsim

import (
	"context"
	"os"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim/qemu"
)

// The store's side of the QEMU guests: each server's disks follow that
// server's drives list and power state. st.vms is fixed at start.

// vmOf is the server's QEMU guest; nil if it has none.
func (st *store) vmOf(server string) *vmGuest { return st.vms[server] }

// reconcile makes the drive's disk in this guest match the simulated
// state, like guest.reconcile for loop devices; in addition, a drive being
// detached from the running guest leaves the server only once QEMU has
// reported its device deleted (or there is no guest to hold it).
func (g *vmGuest) reconcile(st *store, id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		want, leaving := st.vmWant(g.server, id)
		vm := g.vm
		have := vm != nil && vm.HasDisk(id)
		var err error
		switch {
		case want && !have && vm != nil:
			err = g.plugLocked(st, vm, id)
		case !want && have:
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			err = vm.RemoveDisk(ctx, id)
			cancel()
		default:
			if leaving && !have {
				st.endGuestDetach(g.server, id)
			}
			return
		}
		if err != nil {
			logf("guest of server %s, disk of drive %s: %v", g.server, id, err)
			return
		}
	}
}

func (g *vmGuest) plugLocked(st *store, vm *qemu.VM, id string) error {
	serial, err := g.nextSerial(id)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	return vm.AddDisk(ctx, qemu.Disk{ID: id, File: st.drivePath(id), Serial: serial})
}

// refresh passes a grown backing file on to the guest: block_resize.
func (g *vmGuest) refresh(st *store, id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.vm == nil || !g.vm.HasDisk(id) {
		return
	}
	fi, err := os.Stat(st.drivePath(id))
	if err != nil {
		logf("guest disk of drive %s: %v", id, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := g.vm.ResizeDisk(ctx, id, fi.Size()); err != nil {
		logf("guest disk of drive %s: block_resize: %v", id, err)
	}
}

// settleDetaches ends the detaches a guest that went away can no longer
// complete.
func (g *vmGuest) settleDetaches(st *store) {
	for _, id := range st.guestDetaching(g.server) {
		g.reconcile(st, id)
	}
}

// vmWant tells whether the drive should be a disk in the server's guest
// now (it is on the server's drives list and the server is on), and
// whether it is being detached.
func (st *store) vmWant(server, id string) (want, leaving bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	v, d := st.servers[server], st.drives[id]
	if st.closed || v == nil || d == nil {
		return false, false
	}
	_, attached := v.entry(id)
	_, leaving = v.detaching[id]
	if t, ok := v.appearAt[id]; ok && time.Now().Before(t) {
		attached = false
	}
	return attached && v.guestLive(), leaving
}

// guestDrives lists the drives the server's guest booting now starts with.
func (st *store) guestDrives(server string) []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.servers[server]
	if v == nil || !v.guestLive() {
		return nil
	}
	var ids []string
	for _, e := range v.drives {
		if t, ok := v.appearAt[e.drive]; !ok || !time.Now().Before(t) {
			ids = append(ids, e.drive)
		}
	}
	return ids
}

// endGuestDetach ends a detach from the server that its guest has
// completed, whichever detach (generation) it is.
func (st *store) endGuestDetach(server, did string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if v := st.servers[server]; v != nil {
		if _, ok := v.detaching[did]; ok {
			st.endDetachLocked(v, did)
		}
	}
}

func (st *store) guestDetaching(server string) []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.servers[server]
	if v == nil {
		return nil
	}
	var ids []string
	for id := range v.detaching {
		ids = append(ids, id)
	}
	return ids
}

// powerGuest makes a server's QEMU guest follow a power transition to
// status to: it boots as the server starts and shuts down as it stops.
func (st *store) powerGuest(id, to string) {
	if g := st.vmOf(id); g != nil {
		g.power(st, to != srvStopped && to != stUnavailable)
	}
}

// settleGuestDetachesOf settles the detaches of a server's QEMU guest.
func (st *store) settleGuestDetachesOf(id string) {
	if g := st.vmOf(id); g != nil {
		g.settleDetaches(st)
	}
}
