package qemu

import (
	"context"
	"fmt"
)

// Disks: hot-plug onto tracked root ports, unplug confirmed by QEMU's
// DEVICE_DELETED event.

// watchDeletions closes a disk's gone channel when QEMU reports its device
// deleted. Subscribed once, before any device_del, so no event is missed.
func (vm *VM) watchDeletions() {
	events, cancel := vm.qmp.subscribe(func(ev Event) bool { return deletedDevice(ev) != "" })
	defer cancel()
	for {
		select {
		case ev := <-events:
			vm.markGone(deletedDevice(ev))
		case <-vm.qmp.done:
			return
		}
	}
}

func (vm *VM) markGone(qomID string) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for _, d := range vm.disks {
		if d.qomID() == qomID {
			select {
			case <-d.gone:
			default:
				close(d.gone)
			}
		}
	}
}

// HasDisk reports whether a disk is plugged (or still being unplugged).
func (vm *VM) HasDisk(id string) bool {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	_, ok := vm.disks[id]
	return ok
}

// Disks lists the plugged disks by ID, with the port each holds.
func (vm *VM) Disks() map[string]string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	out := map[string]string{}
	for id, d := range vm.disks {
		out[id] = d.port
	}
	return out
}

// AddDisk hot-plugs a virtio-blk disk backed by a file onto a free port.
func (vm *VM) AddDisk(ctx context.Context, d Disk) error {
	dk, err := vm.reserve(d)
	if err != nil {
		return err
	}
	node := map[string]any{
		"driver": "raw", "node-name": dk.node(), "discard": "unmap",
		"file": map[string]any{"driver": "file", "filename": d.File, "discard": "unmap"},
	}
	if _, err := vm.qmp.call(ctx, "blockdev-add", node); err != nil {
		vm.unreserve(dk)
		return err
	}
	dev := map[string]any{"driver": "virtio-blk-pci", "id": dk.qomID(), "drive": dk.node(), "bus": dk.port}
	if d.Serial != "" {
		dev["serial"] = d.Serial
	}
	if _, err := vm.qmp.call(ctx, "device_add", dev); err != nil {
		_, _ = vm.qmp.call(context.Background(), "blockdev-del", map[string]any{"node-name": dk.node()})
		vm.unreserve(dk)
		return err
	}
	return nil
}

func (vm *VM) reserve(d Disk) (*disk, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if _, ok := vm.disks[d.ID]; ok {
		return nil, fmt.Errorf("disk %s is already plugged", d.ID)
	}
	port, err := vm.slots.take(d.ID)
	if err != nil {
		return nil, err
	}
	vm.seq++
	dk := &disk{Disk: d, seq: vm.seq, port: port, gone: make(chan struct{})}
	vm.disks[d.ID] = dk
	return dk, nil
}

func (vm *VM) unreserve(dk *disk) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.disks[dk.ID] == dk {
		delete(vm.disks, dk.ID)
	}
	vm.slots.release(dk.port, dk.ID)
}

// RemoveDisk unplugs a disk: device_del, then it waits for QEMU's
// DEVICE_DELETED (the guest has let go), then removes the block node and
// frees the port. If ctx ends first the disk stays "unplugging" and its
// port busy; a later RemoveDisk waits again without a second device_del.
func (vm *VM) RemoveDisk(ctx context.Context, id string) error {
	dk, send, err := vm.beginUnplug(id)
	if err != nil {
		return err
	}
	if send {
		if _, err := vm.qmp.call(ctx, "device_del", map[string]any{"id": dk.qomID()}); err != nil {
			vm.cancelUnplug(dk)
			return err
		}
	}
	select {
	case <-dk.gone:
	case <-vm.exited:
		vm.unreserve(dk)
		return nil // no guest, no disk
	case <-ctx.Done():
		return fmt.Errorf("unplugging disk %s: no DEVICE_DELETED: %w", id, ctx.Err())
	}
	_, err = vm.qmp.call(ctx, "blockdev-del", map[string]any{"node-name": dk.node()})
	vm.unreserve(dk)
	return err
}

func (vm *VM) beginUnplug(id string) (dk *disk, send bool, err error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	dk = vm.disks[id]
	if dk == nil {
		return nil, false, fmt.Errorf("disk %s is not plugged", id)
	}
	send = !dk.unplugging
	dk.unplugging = true
	return dk, send, nil
}

func (vm *VM) cancelUnplug(dk *disk) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	dk.unplugging = false
}

// ResizeDisk tells the guest the disk's backing file is now size bytes.
func (vm *VM) ResizeDisk(ctx context.Context, id string, size int64) error {
	node, err := vm.nodeOf(id)
	if err != nil {
		return err
	}
	_, err = vm.qmp.call(ctx, "block_resize", map[string]any{"node-name": node, "size": size})
	return err
}

func (vm *VM) nodeOf(id string) (string, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if dk := vm.disks[id]; dk != nil {
		return dk.node(), nil
	}
	return "", fmt.Errorf("disk %s is not plugged", id)
}
