package cloudsigma_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

// listOf is the {"meta": ..., "objects": [...]} wrapper of list, create and
// action responses; meta is kept as is so the whole body can be compared.
type listOf[T any] struct {
	Meta    json.RawMessage `json:"meta,omitempty"`
	Objects []T             `json:"objects"`
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// generic decodes JSON with numbers kept as their literal text, so a size
// that lost precision or changed form would not compare equal.
func generic(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, b)
	}
	return v
}

// decodeLossless decodes b into a T, re-encodes it and requires the result
// to be semantically equal to b.
func decodeLossless[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding into %T: %v", v, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("re-encoding %T: %v", v, err)
	}
	if want, got := generic(t, b), generic(t, out); !reflect.DeepEqual(want, got) {
		t.Errorf("re-encoded %T differs from the input\nwant: %s\ngot:  %s", v, compact(t, b), out)
	}
	return v
}

func compact(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const docOwner = "42cb107b-d57a-4808-93d9-2d3f9ae4fe71"

func checkDriveRefs(t *testing.T, d cloudsigma.Drive) {
	t.Helper()
	if len(d.UUID) != 36 {
		t.Errorf("drive uuid %q", d.UUID)
	}
	if d.ResourceURI.UUID != d.UUID || d.ResourceURI.ResourceURI != "/api/2.0/drives/"+d.UUID+"/" {
		t.Errorf("drive %s resource_uri decoded as %+v", d.UUID, d.ResourceURI)
	}
	if d.Owner == nil || len(d.Owner.UUID) != 36 || d.Owner.ResourceURI != "/api/2.0/user/"+d.Owner.UUID+"/" {
		t.Errorf("drive %s owner decoded as %+v", d.UUID, d.Owner)
	}
	if d.Status == "" {
		t.Errorf("drive %s has no status", d.UUID)
	}
}

func checkDetailDrive(t *testing.T, d cloudsigma.Drive) {
	t.Helper()
	checkDriveRefs(t, d)
	if d.Name == "" || d.Size <= 0 || d.Media == "" || d.Runtime == nil || d.MountedOn == nil || d.Meta == nil {
		t.Errorf("detail drive %s not fully decoded: %+v", d.UUID, d)
	}
}

func TestDrivesExamplesDecodeLosslessly(t *testing.T) {
	t.Run("list", func(t *testing.T) {
		l := decodeLossless[listOf[cloudsigma.Drive]](t, readTestdata(t, "drives_list.json"))
		if len(l.Objects) != 8 {
			t.Fatalf("got %d drives, want 8", len(l.Objects))
		}
		for _, d := range l.Objects {
			checkDriveRefs(t, d)
			if d.Owner.UUID != docOwner || d.Status != cloudsigma.StatusUnmounted {
				t.Errorf("drive %s: owner %s status %s", d.UUID, d.Owner.UUID, d.Status)
			}
		}
		if l.Objects[0].UUID != "d67997c3-ea7e-43dc-870e-afea2017aeea" {
			t.Errorf("first drive %s", l.Objects[0].UUID)
		}
	})
	t.Run("list fields", func(t *testing.T) {
		l := decodeLossless[listOf[cloudsigma.Drive]](t, readTestdata(t, "drives_list_fields.json"))
		if len(l.Objects) != 8 || l.Objects[7].UUID != "36e1644f-5f3b-4601-b50a-e34e397803e9" || l.Objects[7].Status != "unmounted" {
			t.Fatalf("decoded %+v", l.Objects)
		}
	})
	t.Run("detail list", func(t *testing.T) {
		l := decodeLossless[listOf[cloudsigma.Drive]](t, readTestdata(t, "drives_detail_list.json"))
		if len(l.Objects) != 8 {
			t.Fatalf("got %d drives, want 8", len(l.Objects))
		}
		for _, d := range l.Objects {
			checkDetailDrive(t, d)
		}
		first := l.Objects[0]
		if first.Name != "test_drive_1" || first.Size != 1024000000 || first.StorageType != "dssd" ||
			first.Runtime.IsSnapshotable == nil || !*first.Runtime.IsSnapshotable || first.Runtime.StorageType != "dssd" {
			t.Errorf("first drive decoded as %+v runtime %+v", first, first.Runtime)
		}
		win := l.Objects[3]
		if win.UUID != "f714eb49-e35a-438c-82d9-82960da8942f" || win.Size != 13958643712 || win.Meta["os"] != "windows" ||
			len(win.Meta["install_notes"]) < 1000 || *win.Runtime.IsSnapshotable {
			t.Errorf("licensed drive decoded as %+v", win)
		}
		if l.Objects[1].Size != 11811160064 || l.Objects[1].Meta["description"] != "" {
			t.Errorf("second drive %+v", l.Objects[1])
		}
	})
	t.Run("get", func(t *testing.T) {
		d := decodeLossless[cloudsigma.Drive](t, readTestdata(t, "drives_get.json"))
		checkDetailDrive(t, d)
		if d.UUID != "f17cce62-bcc9-4e0b-a57b-a5582b05aff0" || d.Name != "test_drive_1" || d.Status != "unmounted" ||
			d.AllowMultimount || len(d.MountedOn) != 0 || d.IsMountedOn("x") {
			t.Errorf("decoded %+v", d)
		}
	})
	t.Run("create response", func(t *testing.T) {
		l := decodeLossless[listOf[cloudsigma.Drive]](t, readTestdata(t, "drives_create_response.json"))
		if len(l.Objects) != 5 {
			t.Fatalf("got %d drives, want 5", len(l.Objects))
		}
		for i, d := range l.Objects {
			checkDetailDrive(t, d)
			if d.Status != cloudsigma.StatusCreating || d.StorageType != "" || d.Size != 1024000000 {
				t.Errorf("drive %d: %+v", i, d)
			}
		}
		if l.Objects[1].Runtime.IsSnapshotable != nil {
			t.Errorf("null is_snapshotable decoded as %v", *l.Objects[1].Runtime.IsSnapshotable)
		}
	})
	t.Run("edit response", func(t *testing.T) {
		d := decodeLossless[cloudsigma.Drive](t, readTestdata(t, "drives_edit_response.json"))
		checkDetailDrive(t, d)
		if d.Media != "cdrom" || d.Name != "test_drive_y" || d.UUID != "d36140a9-6586-4fe0-9b3f-fabb4649fa3e" {
			t.Errorf("decoded %+v", d)
		}
	})
	t.Run("resize response", func(t *testing.T) {
		l := decodeLossless[listOf[cloudsigma.Drive]](t, readTestdata(t, "drives_resize_response.json"))
		if len(l.Objects) != 1 {
			t.Fatalf("got %d drives", len(l.Objects))
		}
		d := l.Objects[0]
		checkDetailDrive(t, d)
		if d.Status != cloudsigma.StatusResizing || d.Size != 2147483648 {
			t.Errorf("decoded %+v", d)
		}
	})
	t.Run("clone response", func(t *testing.T) {
		l := decodeLossless[listOf[cloudsigma.Drive]](t, readTestdata(t, "drives_clone_response.json"))
		if len(l.Objects) != 1 {
			t.Fatalf("got %d drives", len(l.Objects))
		}
		d := l.Objects[0]
		checkDetailDrive(t, d)
		if d.Status != cloudsigma.StatusCloningDst || d.UUID != "bf645eae-ce03-4208-87bf-19126b14ea9d" || d.Media != "cdrom" {
			t.Errorf("decoded %+v", d)
		}
	})
}

func TestSnapshotExamplesDecodeLosslessly(t *testing.T) {
	for _, name := range []string{"snapshots_list.json", "snapshots_detail_list.json", "snapshots_list_by_drive.json"} {
		t.Run(name, func(t *testing.T) {
			l := decodeLossless[listOf[cloudsigma.Snapshot]](t, readTestdata(t, name))
			if len(l.Objects) < 2 {
				t.Fatalf("got %d snapshots", len(l.Objects))
			}
			for _, s := range l.Objects {
				if len(s.UUID) != 36 || s.ResourceURI.UUID != s.UUID || len(s.Drive.UUID) != 36 ||
					s.Drive.ResourceURI != "/api/2.0/drives/"+s.Drive.UUID+"/" || s.Owner == nil || s.Timestamp == "" || s.Name == "" {
					t.Errorf("snapshot decoded as %+v", s)
				}
				switch s.Status {
				case cloudsigma.StatusCreating:
					if s.AllocatedSize != nil {
						t.Errorf("creating snapshot %s: null allocated_size decoded as %d", s.UUID, *s.AllocatedSize)
					}
				case cloudsigma.StatusAvailable:
					if s.AllocatedSize == nil || *s.AllocatedSize != 0 {
						t.Errorf("available snapshot %s: allocated_size %v", s.UUID, s.AllocatedSize)
					}
				default:
					t.Errorf("snapshot %s status %q", s.UUID, s.Status)
				}
			}
		})
	}
	t.Run("list creating entry", func(t *testing.T) {
		l := decodeLossless[listOf[cloudsigma.Snapshot]](t, readTestdata(t, "snapshots_list.json"))
		s := l.Objects[2]
		if len(l.Objects) != 6 || s.UUID != "44b7f63a-7fb7-4ead-b32c-ed7d4873a3f1" || s.Status != "creating" ||
			s.Drive.UUID != "bb2b8f77-04ee-42c1-b142-47bc31c2824e" {
			t.Errorf("decoded %+v", s)
		}
	})
	t.Run("get", func(t *testing.T) {
		s := decodeLossless[cloudsigma.Snapshot](t, readTestdata(t, "snapshots_get.json"))
		if s.UUID != "62c600cf-7a25-4703-8003-b3c4445233af" || s.Status != "creating" || s.AllocatedSize != nil {
			t.Errorf("decoded %+v", s)
		}
	})
	t.Run("create response", func(t *testing.T) {
		l := decodeLossless[listOf[cloudsigma.Snapshot]](t, readTestdata(t, "snapshots_create_response.json"))
		if len(l.Objects) != 1 {
			t.Fatalf("got %d snapshots", len(l.Objects))
		}
		s := l.Objects[0]
		if s.Name != "first_snapshot" || s.Meta["key"] != "val" || s.Status != "creating" ||
			s.Drive.UUID != "450357dc-cbe1-471d-b4cc-dbdfe5f28d84" || s.UUID != "855ebdc8-cedb-48d0-9d8d-306c9074be29" {
			t.Errorf("decoded %+v", s)
		}
	})
	t.Run("edit response", func(t *testing.T) {
		s := decodeLossless[cloudsigma.Snapshot](t, readTestdata(t, "snapshots_edit_response.json"))
		if s.Name != "first_snapshot_renamed" || s.Meta["new_key"] != "new_key_value" || s.Status != "available" {
			t.Errorf("decoded %+v", s)
		}
	})
	t.Run("clone response is a drive with an object resource_uri", func(t *testing.T) {
		b := readTestdata(t, "snapshots_clone_response.json")
		const id = "fadfc92d-1bfa-4eb2-bddd-491c54df2fae"
		d := decodeLossless[cloudsigma.Drive](t, b)
		if d.UUID != id || d.ResourceURI.UUID != id || d.ResourceURI.ResourceURI != "/api/2.0/drives/"+id+"/" ||
			d.Status != cloudsigma.StatusCloningDst || d.Size != 1073741824 {
			t.Errorf("decoded %+v", d)
		}
		// Without the top-level uuid, the UUID comes from the object.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "uuid")
		nouuid, _ := json.Marshal(m)
		d2 := decodeLossless[cloudsigma.Drive](t, nouuid)
		if d2.UUID != id {
			t.Errorf("uuid derived from the resource_uri object: %q, want %q", d2.UUID, id)
		}
	})
}

func TestServerExamplesDecodeLosslessly(t *testing.T) {
	t.Run("detail list", func(t *testing.T) {
		l := decodeLossless[listOf[cloudsigma.Server]](t, readTestdata(t, "servers_detail_list.json"))
		if len(l.Objects) != 5 {
			t.Fatalf("got %d servers", len(l.Objects))
		}
		for _, s := range l.Objects {
			if len(s.UUID) != 36 || s.ResourceURI.UUID != s.UUID || s.Status != cloudsigma.StatusStopped ||
				s.Name == "" || s.Drives == nil || len(s.Drives) != 0 || s.Meta == nil {
				t.Errorf("server decoded as %+v", s)
			}
		}
		if l.Objects[1].Name != "test_server_0" || l.Objects[1].UUID != "f50b672f-a963-4b8a-bf05-80903ffd9a9f" {
			t.Errorf("second server %+v", l.Objects[1])
		}
	})
	t.Run("edit response", func(t *testing.T) {
		s := decodeLossless[cloudsigma.Server](t, readTestdata(t, "servers_edit_response.json"))
		if s.Name != "test_server_updated" || s.UUID != "0e94a85a-d195-488e-b25d-ba6980fe21ed" || len(s.Drives) != 0 {
			t.Errorf("decoded %+v", s)
		}
	})
	t.Run("attach response", func(t *testing.T) {
		s := decodeLossless[cloudsigma.Server](t, readTestdata(t, "servers_attach_response.json"))
		const drive = "b403f8e8-737d-4f9d-bb10-6de82508a6db"
		if len(s.Drives) != 1 || s.Meta["meta_key3"] != "value3" {
			t.Fatalf("decoded %+v", s)
		}
		sd, ok := s.HasDrive(drive)
		if !ok || sd.DevChannel != "0:0" || sd.Device != "virtio" || sd.BootOrder == nil || *sd.BootOrder != 1 ||
			sd.Drive.ResourceURI != "/api/2.0/drives/"+drive+"/" {
			t.Fatalf("drive entry decoded as %+v (found %v)", sd, ok)
		}
		if _, ok := s.HasDrive("00000000-0000-0000-0000-000000000000"); ok {
			t.Error("HasDrive found a drive that is not attached")
		}
		// An entry is written back in the PUT form: the drive as a UUID and
		// without the read-only runtime block.
		out, err := json.Marshal(sd)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"boot_order":1,"dev_channel":"0:0","device":"virtio","drive":"` + drive + `"}`
		if !reflect.DeepEqual(generic(t, out), generic(t, []byte(want))) {
			t.Errorf("server drive entry encoded as %s, want %s", out, want)
		}
	})
}

func TestRefForms(t *testing.T) {
	const id = "b403f8e8-737d-4f9d-bb10-6de82508a6db"
	const uri = "/api/2.0/drives/" + id + "/"
	for _, in := range []string{
		`{"uuid":"` + id + `","resource_uri":"` + uri + `"}`,
		`"` + uri + `"`,
		`{"resource_uri":"` + uri + `"}`,
		`{"resource_uri":{"resource_uri":"` + uri + `","uuid":"` + id + `"}}`,
	} {
		var r cloudsigma.Ref
		if err := json.Unmarshal([]byte(in), &r); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if r.UUID != id || r.ResourceURI != uri {
			t.Errorf("%s decoded as %+v", in, r)
		}
	}
	var r cloudsigma.Ref
	if err := json.Unmarshal([]byte(`"`+id+`"`), &r); err != nil || r.UUID != id || r.ResourceURI != "" {
		t.Errorf("bare uuid decoded as %+v, %v", r, err)
	}
	if err := json.Unmarshal([]byte(`null`), &r); err != nil || r != (cloudsigma.Ref{}) {
		t.Errorf("null decoded as %+v, %v", r, err)
	}
	var n cloudsigma.Int64
	for in, want := range map[string]int64{`"1024000000"`: 1024000000, `1073741824.0`: 1073741824, `null`: 0, `4391067795456`: 4391067795456} {
		if err := json.Unmarshal([]byte(in), &n); err != nil || int64(n) != want {
			t.Errorf("Int64 %s decoded as %d, %v", in, n, err)
		}
	}
	if err := json.Unmarshal([]byte(`"ten"`), &n); err == nil {
		t.Error("Int64 accepted a non-number")
	}
}
