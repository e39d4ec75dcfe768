package cloudsim

import (
	"os"
	"strings"
	"testing"
)

const (
	localUUID = "5b4a69a3-8e78-4c45-a8ba-8b13f0895e23"
	otherUUID = "9d2c4f1e-3b7a-4e58-9c61-0a8f5d2e7b34"
)

func TestSerialForms(t *testing.T) {
	id := "0b1f8a5e-0f43-4c21-a3a5-5b0e9c1e2d3f"
	for form, want := range map[string]string{
		"": "0b1f8a5e-0f43-4c21-a", SerialVirtio: "0b1f8a5e-0f43-4c21-a",
		SerialHex: "0b1f8a5e0f434c21a3a5", SerialOther: "QM00007", SerialNone: "",
	} {
		if got, err := serialFor(form, id, 7); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", form, got, err, want)
		}
	}
	for form, names := range map[string]bool{"": true, SerialVirtio: true, SerialHex: true, SerialOther: false, SerialNone: false} {
		if SerialNamesDrive(form) != names {
			t.Errorf("SerialNamesDrive(%q) = %t", form, !names)
		}
	}
	if _, err := serialFor("scsi", id, 1); err == nil {
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
		{"server not a UUID", Config{QEMUServers: map[string]QEMUGuest{"node-b": {ImageDir: dir}}}, "not a UUID"},
		{"server is the local one", Config{LocalServer: localUUID, QEMUServers: map[string]QEMUGuest{localUUID: {ImageDir: dir}}}, "use Config.QEMU"},
		{"server also loop devices", Config{GuestServers: map[string]string{otherUUID: dir}, QEMUServers: map[string]QEMUGuest{otherUUID: {ImageDir: dir}}}, "choose one"},
		{"server without image", Config{QEMUServers: map[string]QEMUGuest{otherUUID: {}}}, "no image directory"},
		{"server serial form", Config{QEMUServers: map[string]QEMUGuest{otherUUID: {ImageDir: dir, Serial: "scsi"}}}, "serial form"},
		{"shared directory", Config{LocalServer: localUUID, QEMU: &QEMUGuest{ImageDir: dir, Dir: dir + "/s"},
			QEMUServers: map[string]QEMUGuest{otherUUID: {ImageDir: dir, Dir: dir + "/s"}}}, "share the QEMU guest directory"},
		{"server no image", Config{QEMUServers: map[string]QEMUGuest{otherUUID: {ImageDir: dir, Dir: dir + "/h"}}}, "QEMU cannot start"},
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
	for _, g := range []string{"g", "s", "h"} {
		if _, err := os.Stat(dir + "/" + g + "/csi.sock"); err == nil {
			t.Errorf("a refused guest left its CSI socket behind in %s", g)
		}
	}
}
