// Package testenv holds what tests across the module share about the
// machine they run on.
package testenv

import (
	"os"
	"testing"
)

// RequireRoot stops a test that needs root (loop devices, mknod, mkfs,
// mount). Under `go test -short` it skips, so a developer can run the
// rootless tests as any user; otherwise it fails, so CI (root, no -short)
// never passes with the real-device tests silently skipped.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if testing.Short() {
		t.Skipf("needs root (%s); skipped under -short", why)
	}
	t.Fatalf("needs root (%s); run as root, or with -short to skip it", why)
}
