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

func TestMatchSerialForms(t *testing.T) {
	id := "0f1e2d3c-4b5a-4968-8776-655443322110"
	for serial, want := range map[string]Form{
		"0f1e2d3c-4b5a-4968-8":                 FormPrefix,
		"0F1E2D3C-4B5A-4968-8":                 FormPrefix,
		"0f1e2d3c-4b5a-4968-8\x00\x00":         FormPrefix,
		"0f1e2d3c4b5a49688776":                 FormNoDash,
		"0F1E2D3C4B5A49688776":                 FormNoDash,
		"0f1e2d3c-4b5a-4968-8776-655443322110": FormWhole,
		"0f1e2d3c4b5a49688776655443322110":     FormWholeNoDash,
		"0f1e2d3c-4b5a-4968-87":                FormNone, // 21: no known form
		"0f1e2d3c-4b5a-4968-":                  FormNone, // 19
		"1f1e2d3c-4b5a-4968-8":                 FormNone,
		"QM00001":                              FormNone,
		"":                                     FormNone,
	} {
		if got := MatchSerial(serial, id); got != want {
			t.Errorf("MatchSerial(%q) = %q, want %q", serial, got, want)
		}
	}
	if MatchSerial("0f1e2d3c-4b5a-4968-8", "0f1e2d3c-4b5a-4968-8") != FormNone {
		t.Error("a short UUID matched")
	}
	for form, s := range SerialsOf(id) {
		if MatchSerial(s, id) != form {
			t.Errorf("SerialsOf gave %q for %s, MatchSerial disagrees", s, form)
		}
	}
}
