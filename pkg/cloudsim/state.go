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

func (s *Sim) exportDrive(d *drive) Drive {
	out := Drive{
		UUID: d.uuid, Name: d.name, Media: d.media, Status: d.status(), StorageType: d.storageType,
		Size: d.size, Meta: maps.Clone(d.meta), Tags: slices.Clone(d.tags),
		AllowMultimount: d.allowMultimount, MountedOn: slices.Clone(d.mountedOn),
		Jobs: slices.Clone(d.jobs), Deleting: d.deleting, BackingFile: s.drivePath(d.uuid),
	}
	for _, sn := range s.sortedSnapshots() {
		if sn.drive == d.uuid {
			out.Snapshots = append(out.Snapshots, sn.uuid)
		}
	}
	return out
}

// Drive returns a drive's state.
func (s *Sim) Drive(id string) (Drive, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.drives[id]
	if d == nil {
		return Drive{}, false
	}
	return s.exportDrive(d), true
}

// Drives returns every drive, oldest first.
func (s *Sim) Drives() []Drive {
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := make([]*drive, 0, len(s.drives))
	for _, d := range s.drives {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].seq < ds[j].seq })
	out := make([]Drive, 0, len(ds))
	for _, d := range ds {
		out = append(out, s.exportDrive(d))
	}
	return out
}

// Snapshots returns every snapshot, oldest first.
func (s *Sim) Snapshots() []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Snapshot
	for _, sn := range s.sortedSnapshots() {
		out = append(out, Snapshot{
			UUID: sn.uuid, Name: sn.name, Drive: sn.drive, Status: sn.status, Size: sn.size,
			Meta: maps.Clone(sn.meta), Timestamp: sn.created, BackingFile: s.snapPath(sn.uuid),
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

// Server returns a server's state.
func (s *Sim) Server(id string) (Server, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.servers[id]
	if v == nil {
		return Server{}, false
	}
	out := Server{UUID: v.uuid, Name: v.name(), Status: v.status, Meta: map[string]string{}, Definition: s.renderServer(v)}
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

// CreateServer adds a server with a realistic full definition (NIC, meta,
// public keys) and returns its UUID.
func (s *Sim) CreateServer(name string, running bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addServer(uuid.NewString(), name, running).uuid
}

// SetServerStatus forces a server status (stopped, running, paused,
// unavailable, ...), e.g. to stop the LocalServer.
func (s *Sim) SetServerStatus(id, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.servers[id]
	if v == nil {
		return fmt.Errorf("no server %s", id)
	}
	if status == srvRunning && v.status != srvRunning {
		v.activeSince = time.Now().UTC()
	}
	v.status = status
	return nil
}

// SetDriveStatus forces a drive status, e.g. unavailable. mounted and
// unmounted clear any forced status (they follow mounted_on).
func (s *Sim) SetDriveStatus(id, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.drives[id]
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

// LastServerPut returns the body of the last PUT the server accepted for
// processing, decoded as encoding/json decodes into map[string]any; nil if
// none.
func (s *Sim) LastServerPut(id string) map[string]any {
	s.mu.Lock()
	v := s.servers[id]
	var body []byte
	if v != nil && v.lastPut != nil {
		body, _ = json.Marshal(v.lastPut)
	}
	s.mu.Unlock()
	var out map[string]any
	if body != nil && json.Unmarshal(body, &out) != nil {
		return nil
	}
	return out
}

// GuestDevices maps drive UUID -> loop device for the emulated guest.
func (s *Sim) GuestDevices() map[string]string {
	if s.guest == nil {
		return map[string]string{}
	}
	return s.guest.devices()
}

// GuestLink is the path of a drive's by-id style link ("" without guest
// emulation).
func (s *Sim) GuestLink(driveUUID string) string {
	if s.guest == nil {
		return ""
	}
	return filepath.Join(s.guest.dir, virtio.ByIDName(driveUUID))
}

// DataDir is the directory holding the backing files.
func (s *Sim) DataDir() string { return s.dataDir }
