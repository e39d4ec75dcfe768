package virtio

import (
	"os"
	"path/filepath"
	"testing"
)

func TestEmulatedGuestMarker(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "by-id")
	if IsEmulatedGuest(dir) {
		t.Fatal("a missing directory is an emulated guest")
	}
	if err := DeclareEmulatedGuest(dir); err != nil {
		t.Fatal(err)
	}
	if !IsEmulatedGuest(dir) {
		t.Fatal("declared directory is not an emulated guest")
	}
	if err := WithdrawEmulatedGuest(dir); err != nil || IsEmulatedGuest(dir) {
		t.Fatalf("withdrawn: %v, still a guest: %t", err, IsEmulatedGuest(dir))
	}
	if err := WithdrawEmulatedGuest(dir); err != nil {
		t.Fatalf("withdrawing twice: %v", err)
	}
	// Only a regular file counts: not a link to one, not a directory.
	other := filepath.Join(t.TempDir(), "marker")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, filepath.Join(dir, EmulatedGuestMarker)); err != nil {
		t.Fatal(err)
	}
	if IsEmulatedGuest(dir) {
		t.Error("a symlink named like the marker counts")
	}
	if err := os.Remove(filepath.Join(dir, EmulatedGuestMarker)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, EmulatedGuestMarker), 0o755); err != nil {
		t.Fatal(err)
	}
	if IsEmulatedGuest(dir) {
		t.Error("a directory named like the marker counts")
	}
}
