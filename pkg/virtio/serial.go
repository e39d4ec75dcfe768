package virtio

import "strings"

// The guest-side name of a CloudSigma drive lives here and only here, because
// it is the one fact about the guest the public documentation does not state.
// virtio-blk serials hold at most 20 bytes; a hypervisor that puts the drive
// UUID there may put its first 20 characters, the first 20 of the UUID
// without dashes, in either case, or (other buses, longer serial fields) the
// whole UUID with or without dashes. MatchSerial accepts exactly those forms
// and nothing looser, so a serial either names one drive or none. A guest
// whose serials are in no such form (or absent) is identified by evidence
// instead (pkg/device, docs/identity.md).

// serialLen is the virtio-blk serial length limit (VIRTIO_BLK_ID_BYTES).
const serialLen = 20

// Form is how a guest's serial spells a drive UUID.
type Form string

// The serial forms MatchSerial recognizes.
const (
	FormNone        Form = ""              // not a spelling of this UUID
	FormPrefix      Form = "uuid-prefix20" // first 20 characters, dashes kept
	FormNoDash      Form = "uuid-nodash20" // first 20 characters without dashes
	FormWhole       Form = "uuid-whole"    // the whole UUID
	FormWholeNoDash Form = "uuid-nodash32" // the whole UUID without dashes
)

// Serial is the virtio serial the simulator gives a drive in its default
// mode: the first 20 characters of the UUID.
func Serial(driveUUID string) string {
	if len(driveUUID) > serialLen {
		return driveUUID[:serialLen]
	}
	return driveUUID
}

// ByIDName is the name of the udev link under /dev/disk/by-id for a drive
// whose serial is Serial(driveUUID).
func ByIDName(driveUUID string) string {
	return "virtio-" + Serial(driveUUID)
}

// MatchSerial tells in which form serial spells driveUUID, or FormNone.
// Case is ignored; a UUID that is not 36 characters matches nothing.
func MatchSerial(serial, driveUUID string) Form {
	s := strings.ToLower(strings.Trim(serial, " \t\r\n\x00"))
	id := strings.ToLower(driveUUID)
	if len(id) != 36 || s == "" {
		return FormNone
	}
	nodash := strings.ReplaceAll(id, "-", "")
	switch s {
	case id[:serialLen]:
		return FormPrefix
	case nodash[:serialLen]:
		return FormNoDash
	case id:
		return FormWhole
	case nodash:
		return FormWholeNoDash
	}
	return FormNone
}

// SerialsOf lists the serials of a drive in every recognized form, upper
// case not included (MatchSerial ignores case).
func SerialsOf(driveUUID string) map[Form]string {
	id := strings.ToLower(driveUUID)
	if len(id) != 36 {
		return nil
	}
	nodash := strings.ReplaceAll(id, "-", "")
	return map[Form]string{FormPrefix: id[:serialLen], FormNoDash: nodash[:serialLen], FormWhole: id, FormWholeNoDash: nodash}
}
