package virtio

import "testing"

// The serial is the first 20 characters (VIRTIO_BLK_ID_BYTES) of the UUID.
func TestSerialIsTheUUIDPrefix(t *testing.T) {
	id := "0f1e2d3c-4b5a-4968-8776-655443322110"
	if got := Serial(id); got != "0f1e2d3c-4b5a-4968-8" {
		t.Fatalf("Serial = %q", got)
	}
	if got := ByIDName(id); got != "virtio-0f1e2d3c-4b5a-4968-8" {
		t.Fatalf("ByIDName = %q", got)
	}
}
