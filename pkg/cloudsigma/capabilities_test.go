package cloudsigma_test

import (
	"testing"
)

func TestCapabilities(t *testing.T) {
	t.Parallel()
	e := newSimEnv(t, nil, nil)
	caps, err := e.c.GetCapabilities(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if caps.Drives["dssd"].MinSize != 536870912 || caps.Drives["dssd"].MaxSize != 4391067795456 {
		t.Errorf("dssd limits %+v", caps.Drives["dssd"])
	}
	if caps.Drives["zadara"].MinSize != 1073741824 { // sent as 1073741824.0
		t.Errorf("zadara limits %+v", caps.Drives["zadara"])
	}
	if caps.Snapshots["max"] != 700 || caps.Snapshots["max_per_drive"] != 90 {
		t.Errorf("snapshot limits %+v", caps.Snapshots)
	}
}
