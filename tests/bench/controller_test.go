package bench_test

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/tests/harness"
)

// ControllerPublish and Unpublish of one volume against the floor: the
// same API calls made directly (publish: read the drive, read the server,
// write the server; unpublish: read and write the server, then the
// simulator's detach delay and one read).
func TestPublishUnpublish(t *testing.T) {
	sz := benchSizes()
	e := env(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	vol, err := createVol(ctxT(t), c, "bench-pub")
	if err != nil {
		t.Fatal(err)
	}
	id := vol.GetVolumeId()
	var pubs, unpubs, floors []time.Duration
	pubCalls, unpubCalls := 0, 0
	for range sz.rounds {
		e.Sim.ResetCalls()
		start := time.Now()
		if _, err := publish(ctxT(t), c, id, e.Server); err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, time.Since(start))
		n, _, _ := callStats(e.Sim)
		pubCalls += n

		e.Sim.ResetCalls()
		start = time.Now()
		if err := unpublish(ctxT(t), c, id, e.Server); err != nil {
			t.Fatal(err)
		}
		unpubs = append(unpubs, time.Since(start))
		n, _, _ = callStats(e.Sim)
		unpubCalls += n

		start = time.Now()
		if _, err := e.Client.GetDrive(ctxT(t), id); err != nil {
			t.Fatal(err)
		}
		srv, err := e.Client.GetServer(ctxT(t), e.Server)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Client.UpdateServerDrives(ctxT(t), srv, srv.Drives); err != nil {
			t.Fatal(err)
		}
		floors = append(floors, time.Since(start))
	}
	rt := roundTrip(t, e, sz.rounds)
	addRow(row{figure: "API round trip (GET server)", measured: ms(rt), baseline: fmt.Sprintf("modelled %s", ms(rtt)),
		ratio: fmt.Sprintf("%.2f", ratio(rt, rtt)), goal: "-", calls: "1"})
	p, f := median(pubs), median(floors)
	addRow(row{figure: "ControllerPublish, one volume", measured: ms(p),
		baseline: fmt.Sprintf("%s (its 3 calls made directly)", ms(f)), ratio: fmt.Sprintf("%.2f (%.1f round trips)", ratio(p, f), ratio(p, rt)),
		goal: "≤ 3 calls", calls: fmt.Sprintf("%.1f", float64(pubCalls)/float64(sz.rounds)),
		verdict: verdict(pubCalls <= 3*sz.rounds)})
	u := median(unpubs)
	uf := f - rt + detachDelay + rt // server read+write, the unplug, one read
	addRow(row{figure: "ControllerUnpublish, one volume", measured: ms(u),
		baseline: fmt.Sprintf("%s (server read+write, detach delay, one read)", ms(uf)), ratio: fmt.Sprintf("%.2f", ratio(u, uf)),
		goal: "server read+write, one read per poll", calls: fmt.Sprintf("%.1f", float64(unpubCalls)/float64(sz.rounds)), verdict: "-"})
}

// Attach fan-in: fanIn concurrent publishes of distinct volumes to one
// server, against one publish measured in the same run; then again with
// every CPU kept busy by spinning processes.
func TestAttachFanIn(t *testing.T) {
	sz := benchSizes()
	e := env(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	ids := make([]string, sz.fanIn)
	parallel(t, sz.fanIn, func(i int) error {
		vol, err := createVol(ctxT(t), c, fmt.Sprintf("bench-fan-%d", i))
		ids[i] = vol.GetVolumeId()
		return err
	})
	fanIn(t, e, c, ids, "")
	for range numCPU() {
		start(t, os.DevNull, nil, "sh", "-c", "while :; do :; done")
	}
	fanIn(t, e, c, ids, fmt.Sprintf(", %d CPU-bound processes", numCPU()))
}

func fanIn(t *testing.T, e *harness.Env, c csi.ControllerClient, ids []string, load string) {
	sz := benchSizes()
	var singles, fans []time.Duration
	puts, calls := 0, 0
	for range sz.rounds {
		start := time.Now()
		if _, err := publish(ctxT(t), c, ids[0], e.Server); err != nil {
			t.Fatal(err)
		}
		singles = append(singles, time.Since(start))
		if err := unpublish(ctxT(t), c, ids[0], e.Server); err != nil {
			t.Fatal(err)
		}

		e.Sim.ResetCalls()
		start = time.Now()
		parallel(t, sz.fanIn, func(i int) error {
			_, err := publish(ctxT(t), c, ids[i], e.Server)
			return err
		})
		fans = append(fans, time.Since(start))
		n, p, _ := callStats(e.Sim)
		calls, puts = calls+n, puts+p
		parallel(t, sz.fanIn, func(i int) error { return unpublish(ctxT(t), c, ids[i], e.Server) })
	}
	s, f := median(singles), median(fans)
	perRound := float64(puts) / float64(sz.rounds)
	addRow(row{figure: fmt.Sprintf("Attach fan-in: %d concurrent publishes, one server%s", sz.fanIn, load), measured: ms(f),
		baseline: fmt.Sprintf("%s (one publish)", ms(s)), ratio: fmt.Sprintf("%.2f", ratio(f, s)),
		goal:    "≤ 1.2x, ≤ 4 server PUTs",
		calls:   fmt.Sprintf("%.2f (%.1f server PUTs per %d)", float64(calls)/float64(sz.rounds*sz.fanIn), perRound, sz.fanIn),
		verdict: verdict(ratio(f, s) <= 1.2 && perRound <= 4)})
}

// Create burst: burst concurrent CreateVolume calls against the
// simulator's floor for one create (its status delay plus one round trip),
// with the documented rate limits enforced.
func TestCreateBurst(t *testing.T) {
	sz := benchSizes()
	e := env(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	// Warm: the capabilities and the cluster tag are read once per process.
	if _, err := createVol(ctxT(t), c, "bench-warm"); err != nil {
		t.Fatal(err)
	}
	rt := roundTrip(t, e, sz.rounds)
	floor := createDelay + rt

	e.Sim.ResetCalls()
	start := time.Now()
	if _, err := createVol(ctxT(t), c, "bench-one"); err != nil {
		t.Fatal(err)
	}
	one := time.Since(start)
	oneCalls, _, _ := callStats(e.Sim)
	addRow(row{figure: "CreateVolume, one", measured: ms(one), baseline: fmt.Sprintf("%s (status delay + round trip)", ms(floor)),
		ratio: fmt.Sprintf("%.2f", ratio(one, floor)), goal: "lookup, create, one read per poll", calls: fmt.Sprint(oneCalls), verdict: "-"})

	e.Sim.ResetCalls()
	start = time.Now()
	parallel(t, sz.burst, func(i int) error {
		_, err := createVol(ctxT(t), c, fmt.Sprintf("bench-burst-%d", i))
		return err
	})
	burst := time.Since(start)
	calls, _, limited := callStats(e.Sim)
	perVol := float64(calls) / float64(sz.burst)
	addRow(row{figure: fmt.Sprintf("Create burst: %d concurrent CreateVolume", sz.burst), measured: ms(burst),
		baseline: fmt.Sprintf("%s (status delay + round trip)", ms(floor)), ratio: fmt.Sprintf("%.2f", ratio(burst, floor)),
		goal:    "all succeed, ≤ 1.3x, no 429, < 4 calls/volume",
		calls:   fmt.Sprintf("%.2f per volume, %d answered 429", perVol, limited),
		verdict: verdict(ratio(burst, floor) <= 1.3 && limited == 0 && perVol < 4)})
}

// parallel runs f(0..n-1) concurrently and fails on the first error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
