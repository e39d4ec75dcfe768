// Package noserial runs csi-sanity on a guest whose disks show no serial:
// every drive is identified by evidence (docs/identity.md).
package noserial

import (
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/cloudsigma-csi/driver/tests/sanity/sanitytest"
)

func TestSanityNoSerial(t *testing.T) {
	if testing.Short() {
		t.Skip("csi-sanity on loop devices needs root and takes a minute")
	}
	sanitytest.RunSerials(t, "ext4", virtio.GuestSerialNone)
}
