package virtio

import "testing"

func TestChannelsValidateAndNormalize(t *testing.T) {
	if err := (Channels{Controllers: 1, Units: 7}).Validate(); err == nil {
		t.Fatal("7 units per controller accepted")
	}
	if got := Normalize(" 01:2"); got != "1:2" {
		t.Fatalf("normalize: %q", got)
	}
	if DefaultChannels.MaxVolumes() != DefaultChannels.Capacity()-1 {
		t.Fatal("MaxVolumes must leave one channel for the boot drive")
	}
}

func TestFreeIsControllerMajorAndSkipsUsed(t *testing.T) {
	c := Channels{Controllers: 2, Units: 2}
	got, ok := c.Free(map[string]bool{"0:0": true, "0:1": true})
	if !ok || got != "1:0" {
		t.Fatalf("Free = %q, %v; want 1:0", got, ok)
	}
	if _, ok := c.Free(map[string]bool{"0:0": true, "0:1": true, "1:0": true, "1:1": true}); ok {
		t.Fatal("Free found a channel on a full server")
	}
}
