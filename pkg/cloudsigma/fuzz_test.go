package cloudsigma

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// seedTestdata adds every testdata/*.json file (and, via add, any derived
// inputs) to a fuzz corpus.
func seedTestdata(f *testing.F, add func(b []byte)) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no testdata seeds: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// objectsIn returns the body itself and, for list/create wrappers, each
// element of its objects array, so object-level targets get real objects.
func objectsIn(b []byte) [][]byte {
	out := [][]byte{b}
	var w struct {
		Objects []json.RawMessage `json:"objects"`
	}
	if json.Unmarshal(b, &w) == nil {
		for _, o := range w.Objects {
			out = append(out, o)
		}
	}
	return out
}

func FuzzDecodeError(f *testing.F) {
	f.Add(400, []byte(`[{"error_point":"size","error_type":"validation","error_message":"Drive size must be between 536870912 and 4391067795456 bytes"}]`))
	f.Add(503, []byte(`[{"error_point":null,"error_type":"concurrency","error_message":"busy"},{"error_type":"backend","error_message":"second"}]`))
	f.Add(404, []byte(`{"error_type":"notexist","error_message":"gone"}`))
	f.Add(502, []byte("<html><body>Bad Gateway "+strings.Repeat("é", 150)+"</body></html>"))
	f.Add(500, []byte(`[{"error_type":`))
	f.Add(401, []byte(``))
	f.Add(403, []byte(`[null]`))
	f.Add(999, []byte("\xff\xfe\x00"))
	seedTestdata(f, func(b []byte) { f.Add(200, b) })
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := decodeError(status, body, "req-1", http.MethodGet, "drives/")
		if e == nil {
			t.Fatal("decodeError returned nil")
		}
		if e.StatusCode != status || e.RequestID != "req-1" || e.Method != http.MethodGet || e.Path != "drives/" {
			t.Fatalf("lost call details: %+v", e)
		}
		if len(e.Items) == 0 {
			// Not the documented array: a trimmed excerpt of the body.
			if len(e.Message) > 203 {
				t.Fatalf("excerpt of %d bytes: %q", len(e.Message), e.Message)
			}
			if e.Type != "" || e.Point != "" {
				t.Fatalf("type/point invented from a non-array body: %+v", e)
			}
		} else {
			if e.Type != e.Items[0].Type || e.Message != e.Items[0].Message {
				t.Fatalf("first item not promoted: %+v", e)
			}
			// A decoded JSON string is at most 3 bytes per input byte
			// (an invalid byte becomes U+FFFD).
			if len(e.Message) > 3*len(body) {
				t.Fatalf("message of %d bytes from a %d-byte body", len(e.Message), len(body))
			}
		}
		if !utf8.ValidString(e.Message) {
			t.Fatalf("message is not valid UTF-8: %q", e.Message)
		}
		s := e.Error()
		if !strings.Contains(s, "req-1") || !strings.HasPrefix(s, "cloudsigma: GET drives/: ") {
			t.Fatalf("Error() = %q", s)
		}
		if !IsNotFound(e) && status == http.StatusNotFound {
			t.Fatal("a 404 is not IsNotFound")
		}
	})
}

// roundTrip checks that v, once decoded, encodes to JSON that decodes and
// re-encodes to the same value: Marshal -> Unmarshal -> Marshal is stable.
func roundTrip[T any](t *testing.T, v T) (first []byte) {
	t.Helper()
	b1, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T after a successful unmarshal: %v", v, err)
	}
	var v2 T
	if err := json.Unmarshal(b1, &v2); err != nil {
		t.Fatalf("unmarshal of our own encoding %s: %v", b1, err)
	}
	b2, err := json.Marshal(v2)
	if err != nil {
		t.Fatalf("second marshal: %v", err)
	}
	if !jsonEqual(t, b1, b2) {
		t.Fatalf("encoding not stable:\nfirst:  %s\nsecond: %s", b1, b2)
	}
	return b1
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	dec := func(x []byte) any {
		d := json.NewDecoder(bytes.NewReader(x))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("invalid JSON %s: %v", x, err)
		}
		return v
	}
	return reflect.DeepEqual(dec(a), dec(b))
}

func FuzzDecodeDrive(f *testing.F) {
	f.Add([]byte(`null`))
	f.Add([]byte(`{"size":"1024000000","resource_uri":{"uuid":"x","resource_uri":"/api/2.0/drives/x/"}}`))
	f.Add([]byte(`{"size":1e300,"mounted_on":["/api/2.0/servers/s/"],"owner":null,"runtime":{"snapshots_allocated_size":"7"}}`))
	seedTestdata(f, func(b []byte) {
		for _, o := range objectsIn(b) {
			f.Add(o)
		}
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Drive
		if err := json.Unmarshal(b, &d); err != nil {
			return
		}
		out := roundTrip(t, d)
		// A drive read from the API is written back losslessly.
		if d.raw != nil && !jsonEqual(t, b, out) {
			t.Fatalf("drive not re-encoded as read:\nin:  %s\nout: %s", b, out)
		}
		if d.UUID == "" && d.ResourceURI.UUID != "" {
			t.Fatalf("uuid not derived from resource_uri %+v", d.ResourceURI)
		}
		// The full-definition body of an update is derived without error.
		if d.raw != nil {
			if _, err := writable(d.raw); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzDecodeServer(f *testing.F) {
	f.Add([]byte(`{"drives":[{"boot_order":null,"dev_channel":"0:0","device":"virtio","drive":"u","runtime":{"io":{}}}],"cpu_type":"amd"}`))
	f.Add([]byte(`{"drives":null}`))
	seedTestdata(f, func(b []byte) {
		for _, o := range objectsIn(b) {
			f.Add(o)
		}
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Server
		if err := json.Unmarshal(b, &s); err != nil {
			return
		}
		out := roundTrip(t, s)
		if s.raw != nil && !jsonEqual(t, b, out) {
			t.Fatalf("server not re-encoded as read:\nin:  %s\nout: %s", b, out)
		}
		// Each drive entry encodes to the PUT form, which decodes back to
		// the same typed entry, and the runtime block is dropped.
		for _, sd := range s.Drives {
			w, err := json.Marshal(sd)
			if err != nil {
				t.Fatalf("marshal drive entry: %v", err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(w, &m); err != nil {
				t.Fatalf("drive entry encoded as %s: %v", w, err)
			}
			if _, ok := m["runtime"]; ok {
				t.Fatalf("runtime written back: %s", w)
			}
			var back ServerDrive
			if err := json.Unmarshal(w, &back); err != nil {
				t.Fatalf("drive entry %s does not decode: %v", w, err)
			}
			if back.DevChannel != sd.DevChannel || back.Device != sd.Device ||
				!reflect.DeepEqual(back.BootOrder, sd.BootOrder) ||
				(!strings.Contains(sd.Drive.UUID, "/") && back.Drive.UUID != sd.Drive.UUID) {
				t.Fatalf("drive entry changed on write-back: %+v -> %s -> %+v", sd, w, back)
			}
		}
	})
}

func FuzzRef(f *testing.F) {
	for _, s := range []string{
		`null`, `""`, `"/"`, `"abc"`, `"/api/2.0/drives/x/"`, `{"uuid":"a"}`,
		`{"resource_uri":"/api/2.0/drives/x/"}`, `{"uuid":"","resource_uri":{"resource_uri":"/a/b/","uuid":"b"}}`,
		`{"resource_uri":{"resource_uri":{"uuid":"deep"}}}`, `{"resource_uri":5}`, ` "x" `,
	} {
		f.Add([]byte(s))
	}
	seedTestdata(f, func(b []byte) {
		// The refs inside the examples: owner, drive, resource_uri values.
		var objs []map[string]json.RawMessage
		for _, o := range objectsIn(b) {
			var m map[string]json.RawMessage
			if json.Unmarshal(o, &m) == nil {
				objs = append(objs, m)
			}
		}
		for _, m := range objs {
			for _, k := range []string{"owner", "drive", "resource_uri"} {
				if v, ok := m[k]; ok {
					f.Add([]byte(v))
				}
			}
		}
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Ref
		if err := json.Unmarshal(b, &r); err != nil {
			return
		}
		roundTrip(t, r)
		if r.ResourceURI != "" && !strings.Contains(r.ResourceURI, "/") {
			t.Fatalf("resource_uri without a slash: %+v", r)
		}
	})
}
