package device

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// Every serial form of virtio.MatchSerial finds the drive by a sysfs scan
// (no by-id link names the other forms), beside a disk of another drive.
func TestVirtioFinderSerialForms(t *testing.T) {
	other := "0f1e2d3c-4b5a-4968-8776-655443322110"
	id := uuid.NewString()
	for form, serial := range virtio.SerialsOf(id) {
		for _, s := range []string{serial, strings.ToUpper(serial)} {
			t.Run(string(form)+"/"+s, func(t *testing.T) {
				tr := newTree(t)
				tr.disk(t, "vdb", gib, map[string]string{"serial": virtio.Serial(other)})
				tr.disk(t, "vdc", gib, map[string]string{"serial": s})
				dev, err := tr.finder(nil).Find(context.Background(), id, gib)
				if err != nil || dev != filepath.Join(tr.dev, "vdc") {
					t.Fatalf("Find = %q, %v; want vdc", dev, err)
				}
			})
		}
	}
}
