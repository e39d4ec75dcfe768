package cloudsigma

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Drive statuses.
const (
	StatusCreating    = "creating"
	StatusUnmounted   = "unmounted"
	StatusMounted     = "mounted"
	StatusCloningSrc  = "cloning_src"
	StatusCloningDst  = "cloning_dst"
	StatusResizing    = "resizing"
	StatusCopying     = "copying"
	StatusUnavailable = "unavailable"
	// Snapshot statuses.
	StatusAvailable = "available"
	// Server statuses.
	StatusRunning = "running"
	StatusStopped = "stopped"
)

// Meta is an object's user metadata. The API documents string values but
// does not enforce them: a value another tool wrote as a number, boolean,
// list or object is kept as its JSON text, so one odd key never makes a
// drive, snapshot or server unreadable. (Written back, it becomes a string.)
type Meta map[string]string

func (m *Meta) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*m = nil
		return nil
	}
	out := make(Meta, len(raw))
	for k, v := range raw {
		var str string
		switch {
		case json.Unmarshal(v, &str) == nil:
			out[k] = str
		case string(bytes.TrimSpace(v)) == "null":
			out[k] = ""
		default:
			out[k] = string(bytes.TrimSpace(v))
		}
	}
	*m = out
	return nil
}

// Ref is a reference to another object. The API writes references as an
// object {uuid, resource_uri}, as a bare URI, or as a bare UUID depending on
// the call; Ref accepts all three.
type Ref struct {
	UUID        string `json:"uuid"`
	ResourceURI string `json:"resource_uri,omitempty"`
}

func (r *Ref) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*r = Ref{}
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = refFromString(s)
		return nil
	}
	type plain Ref
	var p struct {
		plain
		// resource_uri is itself an object in the snapshot clone response.
		ResourceURI json.RawMessage `json:"resource_uri"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*r = Ref(p.plain)
	r.ResourceURI = ""
	if len(p.ResourceURI) > 0 {
		var inner Ref
		if err := inner.UnmarshalJSON(p.ResourceURI); err != nil {
			return err
		}
		r.ResourceURI = inner.ResourceURI
		if r.UUID == "" {
			r.UUID = inner.UUID
		}
	}
	return nil
}

func refFromString(s string) Ref {
	if strings.Contains(s, "/") {
		parts := strings.Split(strings.Trim(s, "/"), "/")
		return Ref{UUID: parts[len(parts)-1], ResourceURI: s}
	}
	return Ref{UUID: s}
}

// Int64 decodes a JSON number or a numeric string (older API versions sent
// numbers as strings, and the create example still does).
type Int64 int64

func (n *Int64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "null" || s == "" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("cloudsigma: not an integer: %s", b)
		}
		v = int64(f)
	}
	*n = Int64(v)
	return nil
}

// object keeps the full JSON of an API object next to its typed view, so an
// object written back (a server's drives list, a drive's resize definition)
// carries every field the API sent, including those this client does not
// model.
type object map[string]json.RawMessage

// decodeKeepingRaw decodes b into typed (the struct without its methods)
// and keeps every field, modelled or not, in raw for a lossless write-back.
func decodeKeepingRaw(b []byte, typed any, raw *object) error {
	if err := json.Unmarshal(b, typed); err != nil {
		return err
	}
	*raw = nil
	return json.Unmarshal(b, raw)
}

// encodeRawOr writes what the API sent when there is one, else typed.
func encodeRawOr(raw object, typed any) ([]byte, error) {
	if raw != nil {
		return json.Marshal(raw)
	}
	return json.Marshal(typed)
}

func (o object) clone() object {
	c := make(object, len(o))
	for k, v := range o {
		c[k] = v
	}
	return c
}

func (o object) set(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	o[key] = b
	return nil
}

// DriveRuntime is the runtime block of a drive.
type DriveRuntime struct {
	IsSnapshotable         *bool  `json:"is_snapshotable"`
	SnapshotsAllocatedSize Int64  `json:"snapshots_allocated_size"`
	StorageType            string `json:"storage_type"`
}

// Drive is a CloudSigma drive.
type Drive struct {
	UUID            string        `json:"uuid"`
	Name            string        `json:"name"`
	Size            Int64         `json:"size"`
	Status          string        `json:"status"`
	Media           string        `json:"media"`
	StorageType     string        `json:"storage_type"`
	Meta            Meta          `json:"meta"`
	Tags            []Ref         `json:"tags"`
	MountedOn       []Ref         `json:"mounted_on"`
	AllowMultimount bool          `json:"allow_multimount"`
	Affinities      []string      `json:"affinities"`
	Jobs            []Ref         `json:"jobs"`
	Snapshots       []Ref         `json:"snapshots"`
	Owner           *Ref          `json:"owner"`
	ResourceURI     Ref           `json:"resource_uri"`
	Runtime         *DriveRuntime `json:"runtime"`

	raw object
}

func (d *Drive) UnmarshalJSON(b []byte) error {
	type plain Drive
	*d = Drive{}
	if err := decodeKeepingRaw(b, (*plain)(d), &d.raw); err != nil {
		return err
	}
	if d.UUID == "" {
		d.UUID = d.ResourceURI.UUID
	}
	return nil
}

// MarshalJSON writes the drive exactly as the API sent it.
func (d Drive) MarshalJSON() ([]byte, error) {
	type plain Drive
	return encodeRawOr(d.raw, plain(d))
}

// DriveInMotion are the statuses of a drive being created, cloned, resized
// or copied: it will settle by itself, and must not be attached, deleted or
// resized meanwhile.
var DriveInMotion = []string{StatusCreating, StatusCloningSrc, StatusCloningDst, StatusResizing, StatusCopying}

// DriveSettled are the statuses a drive rests in once in-motion work is over.
var DriveSettled = []string{StatusUnmounted, StatusMounted}

// InMotion reports a drive in one of the DriveInMotion statuses.
func (d *Drive) InMotion() bool { return slices.Contains(DriveInMotion, d.Status) }

// Attached reports a drive that any server holds.
func (d *Drive) Attached() bool { return len(d.MountedOn) > 0 || d.Status == StatusMounted }

// IsMountedOn reports whether the API lists the drive as mounted on server.
func (d *Drive) IsMountedOn(server string) bool {
	for _, r := range d.MountedOn {
		if r.UUID == server {
			return true
		}
	}
	return false
}

// Snapshot is a point-in-time copy of a drive.
type Snapshot struct {
	UUID          string `json:"uuid"`
	Name          string `json:"name"`
	Status        string `json:"status"`
	Drive         Ref    `json:"drive"`
	Meta          Meta   `json:"meta"`
	AllocatedSize *Int64 `json:"allocated_size"`
	Timestamp     string `json:"timestamp"`
	Tags          []Ref  `json:"tags"`
	Owner         *Ref   `json:"owner"`
	ResourceURI   Ref    `json:"resource_uri"`

	raw object
}

func (s *Snapshot) UnmarshalJSON(b []byte) error {
	type plain Snapshot
	*s = Snapshot{}
	return decodeKeepingRaw(b, (*plain)(s), &s.raw)
}

// MarshalJSON writes the snapshot exactly as the API sent it.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	type plain Snapshot
	return encodeRawOr(s.raw, plain(s))
}

// ServerDrive is one entry of a server's drives list.
type ServerDrive struct {
	BootOrder  *int   `json:"boot_order"`
	DevChannel string `json:"dev_channel"`
	Device     string `json:"device"`
	Drive      Ref    `json:"drive"`

	raw object
}

func (sd *ServerDrive) UnmarshalJSON(b []byte) error {
	type plain ServerDrive
	*sd = ServerDrive{}
	return decodeKeepingRaw(b, (*plain)(sd), &sd.raw)
}

// MarshalJSON writes the entry as a PUT expects it: the drive as a UUID, the
// typed fields as set, and every other field the API sent unchanged except
// the read-only runtime block.
func (sd ServerDrive) MarshalJSON() ([]byte, error) {
	o := sd.raw.clone()
	delete(o, "runtime")
	fields := map[string]any{"dev_channel": sd.DevChannel, "device": sd.Device, "drive": sd.Drive.UUID}
	if sd.BootOrder != nil {
		fields["boot_order"] = *sd.BootOrder
	}
	for k, v := range fields {
		if err := o.set(k, v); err != nil {
			return nil, err
		}
	}
	return json.Marshal(o)
}

// Server is a CloudSigma server. Only the fields the driver reads are typed;
// the rest travel untouched in raw.
type Server struct {
	UUID        string        `json:"uuid"`
	Name        string        `json:"name"`
	Status      string        `json:"status"`
	Drives      []ServerDrive `json:"drives"`
	Meta        Meta          `json:"meta"`
	ResourceURI Ref           `json:"resource_uri"`

	raw object
}

func (s *Server) UnmarshalJSON(b []byte) error {
	type plain Server
	*s = Server{}
	return decodeKeepingRaw(b, (*plain)(s), &s.raw)
}

// MarshalJSON writes the server exactly as the API sent it.
func (s Server) MarshalJSON() ([]byte, error) {
	type plain Server
	return encodeRawOr(s.raw, plain(s))
}

// HasDrive returns the entry for a drive, if it is in the server's list.
func (s *Server) HasDrive(driveUUID string) (ServerDrive, bool) {
	for _, d := range s.Drives {
		if d.Drive.UUID == driveUUID {
			return d, true
		}
	}
	return ServerDrive{}, false
}

// SizeRange is a storage type's drive size limits in bytes.
type SizeRange struct {
	MinSize Int64 `json:"min_size"`
	MaxSize Int64 `json:"max_size"`
}

// Capabilities are the account's and location's limits. Keys of Drives are
// storage types; a storage type missing here is not offered.
type Capabilities struct {
	Drives    map[string]SizeRange `json:"drives"`
	Snapshots map[string]Int64     `json:"snapshots"`
}

// Job is an asynchronous operation, e.g. a drive clone.
type Job struct {
	UUID      string `json:"uuid"`
	Operation string `json:"operation"`
	State     string `json:"state"`
	Data      struct {
		Progress Int64 `json:"progress"`
	} `json:"data"`
	Resources    []Ref  `json:"resources"`
	Created      string `json:"created"`
	LastModified string `json:"last_modified"`
}
