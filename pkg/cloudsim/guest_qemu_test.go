package cloudsim

import (
	"os"
	"strings"
	"testing"
)

const localUUID = "5b4a69a3-8e78-4c45-a8ba-8b13f0895e23"

func TestSerialForms(t *testing.T) {
	id := "0b1f8a5e-0f43-4c21-a3a5-5b0e9c1e2d3f"
	for form, want := range map[string]string{
		"": "0b1f8a5e-0f43-4c21-a", SerialVirtio: "0b1f8a5e-0f43-4c21-a",
		SerialHex: "0b1f8a5e0f434c21a3a5", SerialNone: "",
	} {
		if got, err := serialFor(form, id); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", form, got, err, want)
		}
	}
	if _, err := serialFor("scsi", id); err == nil {
		t.Error("an unknown serial form was accepted")
	}
}

// A QEMU guest is refused when it cannot be one, with the reason, and
// leaves nothing behind.
func TestQEMUGuestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"with loop devices", Config{LocalServer: localUUID, GuestDevicesDir: dir, QEMU: &QEMUGuest{ImageDir: dir}}, "exclude each other"},
		{"without a local server", Config{QEMU: &QEMUGuest{ImageDir: dir}}, "needs a local server"},
		{"unknown serial form", Config{LocalServer: localUUID, QEMU: &QEMUGuest{ImageDir: dir, Serial: "scsi"}}, "serial form"},
		{"no image", Config{LocalServer: localUUID, QEMU: &QEMUGuest{ImageDir: dir, Dir: dir + "/g"}}, "QEMU cannot start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Username, tc.cfg.Password = "u", "p"
			s, err := New(tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(dir + "/g/csi.sock"); err == nil {
		t.Error("a refused guest left its CSI socket behind")
	}
}
