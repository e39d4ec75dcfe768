// Package soak_test is a bounded chaos soak of the controller: concurrent
// sidecar-like workers run random CSI operations on colliding names while
// the simulator fails, loses and delays API calls and the driver is killed
// and restarted; then everything is cleaned up and the run fails on any
// leaked object, duplicate volume, drive deleted while attached, wrong
// answer or operation that did not converge. Its figures go to stdout.
//
//	go test -count=1 -v ./tests/soak/ -soak.ops=2000 -soak.workers=16 -soak.seed=42
package soak_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

var (
	flagOps      = flag.Int("soak.ops", 400, "random operations in all")
	flagWorkers  = flag.Int("soak.workers", 8, "concurrent workers")
	flagSeed     = flag.Uint64("soak.seed", 0, "random seed (0: from the clock); the interleaving is not reproducible, the choices are")
	flagRestarts = flag.Duration("soak.restart-every", time.Second, "mean time between driver restarts")
	flagFaults   = flag.Float64("soak.fault-scale", 1, "multiplies the rates of the injected faults (0: none)")
)

const (
	extraNodes  = 3                // servers besides the local one
	opDeadline  = 60 * time.Second // a sidecar-like retry loop gives up here: not converged
	callTimeout = 20 * time.Second // one attempt
	sweepEvery  = 300 * time.Millisecond
)

// channels make the attach limit small (two data drives per node), so that
// ResourceExhausted is a regular answer.
var channels = virtio.Channels{Controllers: 1, Units: 3}

type soak struct {
	e           *harness.Env
	c           csi.ControllerClient
	m           *model
	st          *stats
	attachLimit int
}

func TestSoak(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	ops, workers := *flagOps, *flagWorkers
	if testing.Short() {
		ops = min(ops, 100)
	}
	start := time.Now()
	quietKlog(t)
	obs := &observer{}
	delays := harness.DefaultDelays
	e := harness.Start(t, harness.Options{Delays: &delays, SweepEvery: sweepEvery, Channels: channels, SimMiddleware: obs.wrap})
	nodes := []string{e.Server}
	for i := range extraNodes {
		nodes = append(nodes, e.Sim.CreateServer(fmt.Sprintf("soak-node-%d", i), true))
	}
	s := &soak{e: e, c: csi.NewControllerClient(dial(t, e)), m: newModel(10, 4, 6, nodes), st: newStats(),
		attachLimit: channels.MaxVolumes()}

	// Chaos: 503s before the call takes effect, answers lost after it did
	// (a reset connection, a gateway timeout), latency, and restarts.
	if scale := *flagFaults; scale > 0 { // a rate of 0 would fail every call
		rate := func(r float64) float64 { return min(r*scale, 1) }
		e.Sim.InjectFault(cloudsim.Fault{Status: 503, Rate: rate(0.05)})
		for _, m := range []string{"POST", "PUT", "DELETE"} {
			e.Sim.InjectFault(cloudsim.Fault{Method: m, After: true, ResetConn: true, Rate: rate(0.025)})
			e.Sim.InjectFault(cloudsim.Fault{Method: m, After: true, Status: 504, Rate: rate(0.025)})
		}
		e.Sim.InjectFault(cloudsim.Fault{Latency: 30 * time.Millisecond, Rate: rate(0.1)})
	}
	stopChaos, restarts := restartEvery(e, *flagRestarts, seed)

	s.runWorkers(workers, ops, seed)
	stopChaos()
	e.Sim.ClearFaults()
	work := time.Since(start)
	s.checkState()
	s.cleanup()
	s.waitEmpty(20 * time.Second)

	faults := e.Sim.FaultStats()
	f := figures{seed: seed, workers: workers, ops: ops, duration: time.Since(start),
		restarts: int(restarts.all.Load()), kills: int(restarts.kills.Load()),
		failed: faults.Failed, lost: faults.Lost, slowed: faults.Delayed,
		apiCalls: int(obs.calls.Load()), callLog: len(e.Sim.Calls())}
	f.deletesAttached, f.deletesWithSnapshots = obs.violations()
	for _, l := range s.st.lines(f) {
		t.Log(l)
		fmt.Println(l)
	}
	t.Logf("soak: random work took %s", work.Round(100*time.Millisecond))
	for _, l := range s.st.failures(f) {
		t.Error(l)
	}
}

// converge calls f like a sidecar: again, with backoff, on the codes that
// mean "try again" (Unavailable, Aborted, DeadlineExceeded, Internal), until
// another answer comes or the operation's deadline passes (false: it did
// not converge).
func (s *soak) converge(op string, f func(ctx context.Context) error) (error, bool) {
	s.st.run(op)
	deadline := time.Now().Add(opDeadline)
	wait := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		err := f(ctx)
		cancel()
		switch code := status.Code(err); code {
		case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded, codes.Internal:
			s.st.retry(code)
		default:
			return err, true
		}
		if time.Now().Add(wait).After(deadline) {
			s.st.notConverged(op, fmt.Sprintf("still failing after %s: %s", opDeadline, short(err)))
			return err, false
		}
		time.Sleep(wait/2 + rand.N(wait/2))
		wait = min(2*wait, time.Second)
	}
}

// expect records an operation's final answer, right when its code is one
// of want.
func (s *soak) expect(op string, err error, what string, want ...codes.Code) bool {
	code := status.Code(err)
	right := slices.Contains(want, code)
	s.st.outcome(op, code, right, fmt.Sprintf("%s: answered %s (%s), want %v", what, code, short(err), want))
	return right
}

// runWorkers runs the operations on workers goroutines until ops of them
// have run (skipped ones do not count).
func (s *soak) runWorkers(workers, ops int, seed uint64) {
	type weighted struct {
		n    int
		name string
		op   func(*rand.Rand) bool
	}
	mix := []weighted{
		{18, "create", s.create}, {8, "restore", s.restore}, {12, "delete", s.deleteVolume},
		{18, "publish", s.publish}, {12, "unpublish", s.unpublish}, {8, "expand", s.expand},
		{12, "snapshot", s.snapshot}, {8, "deletesnapshot", s.deleteSnapshot}, {4, "conflict", s.conflict},
	}
	total := 0
	for _, w := range mix {
		total += w.n
	}
	var done, picks atomic.Int64
	var wg sync.WaitGroup
	for i := range workers {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Go(func() {
			for done.Load() < int64(ops) && picks.Add(1) < int64(50*ops) {
				n := r.IntN(total)
				for _, w := range mix {
					if n -= w.n; n < 0 {
						if w.op(r) {
							done.Add(1)
						} else {
							s.st.skip(w.name)
						}
						break
					}
				}
			}
		})
	}
	wg.Wait()
}

type restartCounts struct{ all, kills atomic.Int64 }

// restartEvery kills (or stops gracefully, half of the time) and restarts
// the driver at random intervals around every, until stop is called.
func restartEvery(e *harness.Env, every time.Duration, seed uint64) (stop func(), counts *restartCounts) {
	counts = &restartCounts{}
	quit, finished := make(chan struct{}), make(chan struct{})
	r := rand.New(rand.NewPCG(seed, 1<<32))
	go func() {
		defer close(finished)
		for {
			select {
			case <-quit:
				return
			case <-time.After(every/2 + rand.N(every)):
			}
			if r.IntN(2) == 0 {
				e.KillDriver()
				counts.kills.Add(1)
			} else {
				e.StopDriver()
			}
			counts.all.Add(1)
			time.Sleep(time.Duration(r.IntN(300)) * time.Millisecond) // down a while
			e.StartDriver()
		}
	}()
	return func() { close(quit); <-finished }, counts
}

// dial connects like a sidecar: one connection that reconnects by itself
// to the socket, quickly (the default backoff starts at a second).
func dial(t *testing.T, e *harness.Env) *grpc.ClientConn {
	conn, err := grpc.NewClient(e.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: time.Second,
			Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond}}))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// quietKlog sends the driver's log to a file: thousands of lines would
// bury the figures. A failed run prints the file's name and its end.
func quietKlog(t *testing.T) {
	f, err := os.CreateTemp("", "soak-driver-*.log")
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	// Each line once: a writer gets the lines of its severity and above.
	klog.SetOutputBySeverity("INFO", f)
	for _, sev := range []string{"WARNING", "ERROR", "FATAL"} {
		klog.SetOutputBySeverity(sev, io.Discard)
	}
	t.Cleanup(func() {
		klog.Flush()
		klog.SetOutput(os.Stderr)
		_ = fs.Set("logtostderr", "true")
		_ = fs.Set("stderrthreshold", "ERROR")
		defer f.Close()
		if !t.Failed() {
			os.Remove(f.Name())
			return
		}
		var tail []string
		if _, err := f.Seek(0, 0); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if tail = append(tail, sc.Text()); len(tail) > 40 {
					tail = tail[1:]
				}
			}
		}
		t.Logf("driver log: %s; its last lines:", f.Name())
		for _, l := range tail {
			t.Log(l)
		}
	})
}
