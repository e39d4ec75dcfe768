package attach_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/attach"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

// rtt is the modelled network round trip to the API per request.
const rtt = 5 * time.Millisecond

// BenchmarkAttach16 attaches 16 drives to one server through the simulator
// over HTTP, each request delayed by rtt. The baseline attaches them one
// after another (one read-modify-write each, what a per-volume driver does);
// the measured case issues them concurrently through one Queue, which
// coalesces them into few server PUTs. It reports both wall times, the
// speedup ratio and PUTs per attach.
func BenchmarkAttach16(b *testing.B) {
	s, err := cloudsim.New(cloudsim.Config{Username: "u@example.com", Password: "pw"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(rtt)
		s.Handler().ServeHTTP(w, r)
	}))
	defer hs.Close()
	c, err := cloudsigma.New(cloudsigma.Config{APIURL: hs.URL + "/api/2.0/", Username: "u@example.com", Password: "pw", AllowInsecureHTTP: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	server := s.CreateServer("bench", true)
	drives := make([]string, 16)
	for i := range drives {
		d, err := c.CreateDrive(ctx, cloudsigma.DriveCreate{Name: fmt.Sprintf("bench-%d", i), Size: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		drives[i] = d.UUID
	}

	var sequential, coalesced time.Duration
	var puts int
	for i := 0; i < b.N; i++ {
		q := attach.NewQueue(c, virtio.DefaultChannels)
		start := time.Now()
		for _, d := range drives {
			if _, err := q.Attach(ctx, server, d, ""); err != nil {
				b.Fatal(err)
			}
		}
		sequential += time.Since(start)
		detachAll(b, q, server, drives)

		s.ResetCalls()
		start = time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, len(drives))
		for _, d := range drives {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := q.Attach(ctx, server, d, ""); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		coalesced += time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		for _, call := range s.Calls() {
			if call.Method == http.MethodPut && call.Status == http.StatusOK {
				puts++
			}
		}
		detachAll(b, q, server, drives)
	}
	n := float64(b.N)
	b.ReportMetric(sequential.Seconds()*1000/n, "ms-sequential")
	b.ReportMetric(coalesced.Seconds()*1000/n, "ms-coalesced")
	b.ReportMetric(sequential.Seconds()/coalesced.Seconds(), "x-speedup")
	b.ReportMetric(float64(puts)/n/float64(len(drives)), "puts/attach")
}

func detachAll(b *testing.B, q *attach.Queue, server string, drives []string) {
	b.Helper()
	var wg sync.WaitGroup
	for _, d := range drives {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.Detach(context.Background(), server, d, nil); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
}
