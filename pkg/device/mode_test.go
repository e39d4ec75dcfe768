package device

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/servercontext"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// sysDisks makes a fake SysDir with disks name -> serial ("" = none).
func sysDisks(t *testing.T, disks map[string]string) string {
	sys := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sys, "block"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, serial := range disks {
		dir := filepath.Join(sys, "block", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if serial != "" {
			if err := os.WriteFile(filepath.Join(dir, "serial"), []byte(serial+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return sys
}

func TestModeDetected(t *testing.T) {
	boot := "0f1e2d3c-4b5a-4968-8776-655443322110"
	sc := &servercontext.Context{Drives: []servercontext.Drive{{DriveUUID: boot, DevChannel: "0:0", Device: "virtio", Boot: true}}}
	ctxOK := func(context.Context) (*servercontext.Context, error) { return sc, nil }
	for _, tc := range []struct {
		name   string
		disks  map[string]string
		ctx    func(context.Context) (*servercontext.Context, error)
		force  Mode
		want   Mode
		detail string
	}{
		{"uuid prefix", map[string]string{"vda": virtio.Serial(boot), "loop0": ""}, ctxOK, ModeAuto, ModeUUIDSerial, "uuid-prefix20"},
		{"dashless upper case", map[string]string{"vda": strings.ToUpper(virtio.SerialsOf(boot)[virtio.FormNoDash])}, ctxOK, ModeAuto, ModeUUIDSerial, "uuid-nodash20"},
		{"other serials", map[string]string{"vda": "QM00001", "vdb": "QM00002"}, ctxOK, ModeAuto, ModeOtherSerial, "QM00001"},
		{"no serials", map[string]string{"vda": "", "sr0": "QM00003"}, ctxOK, ModeAuto, ModeNoSerial, "none of 1 disks"},
		{"a serial of a drive not in the context", map[string]string{"vda": virtio.Serial("1f1e2d3c-4b5a-4968-8776-655443322110")}, ctxOK, ModeAuto, ModeOtherSerial, "naming no drive"},
		{"no disk yet", map[string]string{}, ctxOK, ModeAuto, ModeUnknown, "no disk"},
		{"no drive in the context yet", map[string]string{"vda": ""},
			func(context.Context) (*servercontext.Context, error) { return &servercontext.Context{}, nil }, ModeAuto, ModeUnknown, "lists no drive"},
		{"no context: serials only", map[string]string{"vda": ""}, nil, ModeAuto, ModeUUIDSerial, "no server context"},
		{"context silent: serials only", map[string]string{"vda": ""},
			func(context.Context) (*servercontext.Context, error) { return nil, errors.New("no reply") }, ModeAuto, ModeUUIDSerial, "unreadable"},
		{"forced", map[string]string{"vda": virtio.Serial(boot)}, ctxOK, ModeNoSerial, ModeNoSerial, "forced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &VirtioFinder{ByIDDir: t.TempDir(), SysDir: sysDisks(t, tc.disks), Context: tc.ctx, Identity: tc.force}
			got, detail := f.Mode(context.Background())
			if got != tc.want || !strings.Contains(detail, tc.detail) {
				t.Fatalf("Mode = %s (%s), want %s mentioning %q", got, detail, tc.want, tc.detail)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": ModeAuto, "auto": ModeAuto, "uuid-serial": ModeUUIDSerial, "no-serial": ModeNoSerial, "other-serial": ModeOtherSerial} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseMode("serial"); err == nil {
		t.Error("ParseMode accepted an unknown mode")
	}
}

// Without a content digest or a server context, the evidence path refuses
// rather than guesses.
func TestEvidenceRefusesWithoutEvidence(t *testing.T) {
	id := "0f1e2d3c-4b5a-4968-8776-655443322110"
	f := &VirtioFinder{ByIDDir: t.TempDir(), SysDir: sysDisks(t, map[string]string{"vdb": ""}), StateDir: t.TempDir(), Identity: ModeNoSerial}
	for _, tc := range []struct {
		ev   Evidence
		want string
	}{
		{Evidence{Size: 1 << 30}, "no contentDigest"},
		{Evidence{Size: 1 << 30, Digest: "sha256:00"}, "needs the server context"},
	} {
		if _, err := f.findByEvidence(context.Background(), id, tc.ev); !errors.Is(err, ErrIdentity) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("evidence %+v: %v, want ErrIdentity saying %q", tc.ev, err, tc.want)
		}
	}
}
