package servercontext

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/google/uuid"
)

// wireContext is the reply to "<\n\n>". Drives carry the full drive
// definition; its uuid, name and meta are kept. Unknown fields are ignored.
type wireContext struct {
	UUID   string                     `json:"uuid"`
	Name   string                     `json:"name"`
	Meta   map[string]json.RawMessage `json:"meta"`
	Drives []struct {
		BootOrder  json.RawMessage `json:"boot_order"`
		DevChannel string          `json:"dev_channel"`
		Device     string          `json:"device"`
		Drive      json.RawMessage `json:"drive"`
	} `json:"drives"`
}

// parseContext decodes and validates a whole-context reply. A reply that
// decodes but lacks a valid uuid is treated as garbled.
func parseContext(line []byte) (*Context, error) {
	var w wireContext
	if err := json.Unmarshal(line, &w); err != nil {
		return nil, fmt.Errorf("garbled context reply (%d bytes): %w", len(line), err)
	}
	if !validUUID(w.UUID) {
		return nil, fmt.Errorf("context reply has no valid server uuid (got %q)", w.UUID)
	}
	sc := &Context{UUID: strings.ToLower(w.UUID), Name: w.Name, Meta: map[string]string{}}
	for k, raw := range w.Meta {
		sc.Meta[k] = metaValue(raw)
	}
	for i, d := range w.Drives {
		id, err := driveUUID(d.Drive)
		if err != nil {
			return nil, fmt.Errorf("context drive %d (%s): %w", i, d.DevChannel, err)
		}
		drive := Drive{DriveUUID: id, DevChannel: d.DevChannel, Device: d.Device,
			Boot: len(d.BootOrder) > 0 && string(d.BootOrder) != "null"}
		var def struct {
			Name string                     `json:"name"`
			Meta map[string]json.RawMessage `json:"meta"`
			Size int64                      `json:"size"`
		}
		if json.Unmarshal(d.Drive, &def) == nil {
			drive.Defined, drive.Name, drive.Meta, drive.Size = true, def.Name, map[string]string{}, def.Size
			for k, raw := range def.Meta {
				drive.Meta[k] = metaValue(raw)
			}
		}
		sc.Drives = append(sc.Drives, drive)
	}
	return sc, nil
}

// parseUUIDReply validates the reply to "<\nuuid\n>": a bare leaf value,
// possibly quoted by a future hypervisor.
func parseUUIDReply(line []byte) (string, error) {
	s := strings.Trim(strings.TrimSpace(string(line)), `"`)
	if !validUUID(s) {
		return "", fmt.Errorf("garbled uuid reply %q", truncate(s, 64))
	}
	return strings.ToLower(s), nil
}

// driveUUID takes the uuid from an expanded drive definition, tolerating a
// bare resource URI ("/api/2.0/drives/<uuid>/") as older APIs return.
func driveUUID(raw json.RawMessage) (string, error) {
	var obj struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal(raw, &obj); err == nil && validUUID(obj.UUID) {
		return strings.ToLower(obj.UUID), nil
	}
	var uri string
	if err := json.Unmarshal(raw, &uri); err == nil {
		if id := path.Base(strings.TrimSuffix(uri, "/")); validUUID(id) {
			return strings.ToLower(id), nil
		}
	}
	return "", fmt.Errorf("no drive uuid in %s", truncate(string(raw), 64))
}

// metaValue keeps strings as they are and other JSON values as their text;
// CloudSigma documents meta values as strings but does not enforce it.
func metaValue(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func validUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
