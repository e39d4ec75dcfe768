package inflight

import (
	"errors"
	"strings"
	"testing"
)

func TestAcquireAllOrNone(t *testing.T) {
	var l Locks
	release, err := l.Acquire(Volume("a"))
	if err != nil {
		t.Fatal(err)
	}
	// "a" is held, so "b" must not be taken either.
	if _, err := l.Acquire(Volume("b"), Volume("a")); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "volume a") {
		t.Fatalf("second acquire of volume a: %v, want ErrBusy naming it", err)
	}
	releaseB, err := l.Acquire(Volume("b"))
	if err != nil {
		t.Fatalf("volume b was taken by a refused acquire: %v", err)
	}
	releaseB()
	release()
	if _, err := l.Acquire(Volume("a")); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestKindsDoNotCollide(t *testing.T) {
	var l Locks
	if _, err := l.Acquire(Volume("x"), VolumeName("x"), Snapshot("x"), SnapshotName("x")); err != nil {
		t.Fatalf("keys of four kinds with one id: %v", err)
	}
}
