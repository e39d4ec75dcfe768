package cloudsim

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/google/uuid"
)

// This file is the simulator's API for tests: copies of the state, and
// levers the HTTP API does not offer.

// Drive is a copy of a simulated drive's state, for tests.
type Drive struct {
	UUID, Name, Media string
	Status            string // as the API reports it
	StorageType       string
	Size              int64
	Meta              map[string]string
	Tags              []string // tag UUIDs
	AllowMultimount   bool
	MountedOn         []string // server UUIDs
	Snapshots         []string // snapshot UUIDs
	Jobs              []string // job UUIDs
	Deleting          bool     // DELETE accepted, not gone yet
	BackingFile       string
}

// Snapshot is a copy of a simulated snapshot's state.
type Snapshot struct {
	UUID, Name  string
	Drive       string // drive UUID
	Status      string // creating, available
	Size        int64  // drive size when taken
	Meta        map[string]string
	Timestamp   time.Time
	BackingFile string
}

// ServerDrive is one entry of a server's drives list.
type ServerDrive struct {
	Drive      string // drive UUID
	DevChannel string // "controller:unit"
	Device     string // virtio or ide
	BootOrder  *int
}

// Server is a copy of a simulated server's state.
type Server struct {
	UUID, Name, Status string
	Meta               map[string]string
	Drives             []ServerDrive
	Detaching          []ServerDrive  // removed, still mounted until the detach delay
	Definition         map[string]any // the full definition as GET returns it
}

// Drive returns a drive's state.
func (s *Sim) Drive(id string) (Drive, bool) { return s.st.driveCopy(id) }

// Drives returns every drive, oldest first.
func (s *Sim) Drives() []Drive { return s.st.driveCopies() }

// Snapshots returns every snapshot, oldest first.
func (s *Sim) Snapshots() []Snapshot { return s.st.snapshotCopies() }

// Server returns a server's state.
func (s *Sim) Server(id string) (Server, bool) { return s.st.serverCopy(id) }

// CreateServer adds a server with a realistic full definition (NIC, meta,
// public keys) and returns its UUID.
func (s *Sim) CreateServer(name string, running bool) string {
	return s.st.addServer(uuid.NewString(), name, running)
}

// SetServerStatus forces a server status (stopped, running, paused,
// unavailable, ...), e.g. to stop the LocalServer. A QEMU guest follows:
// it boots or shuts down.
func (s *Sim) SetServerStatus(id, status string) error {
	if err := s.st.forceServerStatus(id, status); err != nil {
		return err
	}
	s.st.powerGuest(id, status)
	return nil
}

// SetDriveStatus forces a drive status, e.g. unavailable. mounted and
// unmounted clear any forced status (they follow mounted_on).
func (s *Sim) SetDriveStatus(id, status string) error { return s.st.forceDriveStatus(id, status) }

// LastServerPut returns the body of the last PUT the server accepted for
// processing, decoded as encoding/json decodes into map[string]any; nil if
// none.
func (s *Sim) LastServerPut(id string) map[string]any {
	body := s.st.lastServerPut(id)
	var out map[string]any
	if body != nil && json.Unmarshal(body, &out) != nil {
		return nil
	}
	return out
}

// GuestDevices is GuestDevicesOf the LocalServer.
func (s *Sim) GuestDevices() map[string]string { return s.GuestDevicesOf(s.st.localServer) }

// GuestDevicesOf maps drive UUID -> loop device in a loop-device guest's
// server (the LocalServer's or one of Config.GuestServers), or -> the
// hot-plug port its disk holds in a QEMU guest.
func (s *Sim) GuestDevicesOf(server string) map[string]string {
	if g := s.vms[server]; g != nil {
		if vm := g.current.Load(); vm != nil {
			return vm.Disks()
		}
		return map[string]string{}
	}
	g := s.guests[server]
	if g == nil {
		return map[string]string{}
	}
	return g.devices()
}

// GuestLink is the path of a drive's by-id style link ("" without guest
// emulation).
func (s *Sim) GuestLink(driveUUID string) string {
	g := s.guests[s.st.localServer]
	if g == nil {
		return ""
	}
	return filepath.Join(g.dir, virtio.ByIDName(driveUUID))
}

// DataDir is the directory holding the backing files.
func (s *Sim) DataDir() string { return s.st.dataDir }

func (st *store) exportDriveLocked(d *drive) Drive {
	out := Drive{
		UUID: d.uuid, Name: d.name, Media: d.media, Status: d.status(), StorageType: d.storageType,
		Size: d.size, Meta: maps.Clone(d.meta), Tags: slices.Clone(d.tags),
		AllowMultimount: d.allowMultimount, MountedOn: slices.Clone(d.mountedOn),
		Jobs: slices.Clone(d.jobs), Deleting: d.deleting, BackingFile: st.drivePath(d.uuid),
	}
	for _, sn := range st.sortedSnapshotsLocked() {
		if sn.drive == d.uuid {
			out.Snapshots = append(out.Snapshots, sn.uuid)
		}
	}
	return out
}

func (st *store) driveCopy(id string) (Drive, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	d := st.drives[id]
	if d == nil {
		return Drive{}, false
	}
	return st.exportDriveLocked(d), true
}

func (st *store) driveCopies() []Drive {
	st.mu.Lock()
	defer st.mu.Unlock()
	ds := make([]*drive, 0, len(st.drives))
	for _, d := range st.drives {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].seq < ds[j].seq })
	out := make([]Drive, 0, len(ds))
	for _, d := range ds {
		out = append(out, st.exportDriveLocked(d))
	}
	return out
}

func (st *store) snapshotCopies() []Snapshot {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []Snapshot
	for _, sn := range st.sortedSnapshotsLocked() {
		out = append(out, Snapshot{
			UUID: sn.uuid, Name: sn.name, Drive: sn.drive, Status: sn.status, Size: sn.size,
			Meta: maps.Clone(sn.meta), Timestamp: sn.created, BackingFile: st.snapPath(sn.uuid),
		})
	}
	return out
}

func exportEntry(e srvDrive) ServerDrive {
	out := ServerDrive{Drive: e.drive, DevChannel: e.devChannel, Device: e.device}
	if e.bootOrder != nil {
		if n, _, err := getInt64(map[string]any{"b": e.bootOrder}, "b"); err == nil {
			b := int(n)
			out.BootOrder = &b
		}
	}
	return out
}

func (st *store) serverCopy(id string) (Server, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.servers[id]
	if v == nil {
		return Server{}, false
	}
	out := Server{UUID: v.uuid, Name: v.name(), Status: v.status, Meta: map[string]string{}, Definition: st.renderServerLocked(v)}
	if m, ok := v.fields["meta"].(map[string]any); ok {
		for k, x := range m {
			out.Meta[k], _ = x.(string)
		}
	}
	for _, e := range v.drives {
		out.Drives = append(out.Drives, exportEntry(e))
	}
	for _, e := range v.detaching {
		out.Detaching = append(out.Detaching, exportEntry(e))
	}
	sort.Slice(out.Detaching, func(i, j int) bool { return out.Detaching[i].Drive < out.Detaching[j].Drive })
	return out, true
}

func (st *store) forceServerStatus(id, status string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.servers[id]
	if v == nil {
		return fmt.Errorf("no server %s", id)
	}
	if status == srvRunning && v.status != srvRunning {
		v.activeSince = time.Now().UTC()
	}
	v.status = status
	return nil
}

func (st *store) forceDriveStatus(id, status string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	d := st.drives[id]
	if d == nil {
		return fmt.Errorf("no drive %s", id)
	}
	switch status {
	case stMounted, stUnmounted:
		d.op = ""
	case stCreating, stCloningSrc, stCloningDst, stResizing, stCopying, stUnavailable:
		d.op = status
	default:
		return fmt.Errorf("unknown drive status %q", status)
	}
	return nil
}

// lastServerPut is the last accepted PUT body as JSON (nil if none).
func (st *store) lastServerPut(id string) []byte {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.servers[id]
	if v == nil || v.lastPut == nil {
		return nil
	}
	body, _ := json.Marshal(v.lastPut)
	return body
}
