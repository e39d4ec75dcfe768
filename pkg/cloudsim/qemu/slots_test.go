package qemu

import "testing"

func TestSlotsGiveEachDiskItsOwnPort(t *testing.T) {
	s := newSlots(3)
	a, _ := s.take("a")
	b, _ := s.take("b")
	c, _ := s.take("c")
	if a == b || b == c || a == c {
		t.Fatalf("ports %s %s %s: a port given twice", a, b, c)
	}
	if _, err := s.take("d"); err == nil {
		t.Fatal("a fourth disk got a port of three")
	}
	// A port is free again only when its own disk releases it.
	s.release(b, "a")
	if s.free() != 0 {
		t.Fatal("another disk's release freed b's port")
	}
	s.release(b, "b")
	if got, err := s.take("d"); err != nil || got != b {
		t.Fatalf("d got %q %v, want the freed port %s", got, err, b)
	}
}

func TestSlotsUseTheLowestFreePort(t *testing.T) {
	s := newSlots(4)
	for _, d := range []string{"a", "b", "c"} {
		if _, err := s.take(d); err != nil {
			t.Fatal(err)
		}
	}
	s.release("hp0", "a")
	if p, _ := s.take("e"); p != "hp0" {
		t.Fatalf("got %s, want hp0", p)
	}
	if p, _ := s.take("f"); p != "hp3" {
		t.Fatalf("got %s, want hp3", p)
	}
}
