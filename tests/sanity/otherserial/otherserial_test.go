// Package otherserial runs csi-sanity on a guest whose disks show serials
// that name no drive: every drive is identified by evidence
// (docs/identity.md).
package otherserial

import (
	"testing"

	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/cloudsigma-csi/driver/tests/sanity/sanitytest"
)

func TestSanityOtherSerial(t *testing.T) {
	if testing.Short() {
		t.Skip("csi-sanity on loop devices needs root and takes a minute")
	}
	sanitytest.RunSerials(t, "ext4", virtio.GuestSerialOther)
}
