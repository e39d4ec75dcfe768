package virtio

// The guest-side name of a CloudSigma drive lives here and only here, because
// it is the one fact about the guest the public documentation does not state:
// virtio-blk serials hold at most 20 bytes, and we assume the hypervisor puts
// the first 20 characters of the drive UUID there (udev then links
// /dev/disk/by-id/virtio-<serial>). The simulator's emulated guest devices use
// the same functions, so a change of convention is a change of this file.

// serialLen is the virtio-blk serial length limit (VIRTIO_BLK_ID_BYTES).
const serialLen = 20

// Serial is the virtio serial we expect the guest to see for a drive UUID.
func Serial(driveUUID string) string {
	if len(driveUUID) > serialLen {
		return driveUUID[:serialLen]
	}
	return driveUUID
}

// ByIDName is the name of the udev link under /dev/disk/by-id for a drive.
func ByIDName(driveUUID string) string {
	return "virtio-" + Serial(driveUUID)
}
