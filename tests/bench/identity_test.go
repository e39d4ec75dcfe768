package bench_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// The cost of identity evidence (docs/identity.md): the controller with
// --drive-identity=auto (the default, for guests whose disks may show no
// usable serial) against the same run's uuid-serial controller, for one
// publish and for a fan-in of drives whose content tells them apart (as
// formatted drives' does). Goal (docs/identity.md): at most one API call
// more per publish, and no queuing for distinctive drives.
func TestIdentityCosts(t *testing.T) {
	sz := benchSizes()
	serial := env(t, harness.Options{})
	auto := envAuto(t)
	sc, ac := csi.NewControllerClient(serial.Conn()), csi.NewControllerClient(auto.Conn())
	ids := make([]string, sz.fanIn)
	parallel(t, sz.fanIn, func(i int) error {
		vol, err := createVol(ctxT(t), ac, fmt.Sprintf("bench-auto-%d", i))
		ids[i] = vol.GetVolumeId()
		return err
	})
	for i, id := range ids { // formatted drives differ in their first bytes
		distinguish(t, auto.Sim, id, i)
	}
	base, err := createVol(ctxT(t), sc, "bench-serial")
	if err != nil {
		t.Fatal(err)
	}

	var serials, autos, fans []time.Duration
	autoAPI, autoDownloads, fanPuts, fanAPI := 0, 0, 0, 0
	for range sz.rounds {
		start := time.Now()
		if _, err := publish(ctxT(t), sc, base.GetVolumeId(), serial.Server); err != nil {
			t.Fatal(err)
		}
		serials = append(serials, time.Since(start))
		if err := unpublish(ctxT(t), sc, base.GetVolumeId(), serial.Server); err != nil {
			t.Fatal(err)
		}

		auto.Sim.ResetCalls()
		start = time.Now()
		if _, err := publish(ctxT(t), ac, ids[0], auto.Server); err != nil {
			t.Fatal(err)
		}
		autos = append(autos, time.Since(start))
		api, dl := apiAndDownloads(auto.Sim)
		autoAPI, autoDownloads = autoAPI+api, autoDownloads+dl
		if err := unpublish(ctxT(t), ac, ids[0], auto.Server); err != nil {
			t.Fatal(err)
		}

		auto.Sim.ResetCalls()
		start = time.Now()
		parallel(t, sz.fanIn, func(i int) error {
			_, err := publish(ctxT(t), ac, ids[i], auto.Server)
			return err
		})
		fans = append(fans, time.Since(start))
		api, _ = apiAndDownloads(auto.Sim)
		_, puts, _ := callStats(auto.Sim)
		fanAPI, fanPuts = fanAPI+api, fanPuts+puts
		parallel(t, sz.fanIn, func(i int) error { return unpublish(ctxT(t), ac, ids[i], auto.Server) })
	}
	s, a, f := median(serials), median(autos), median(fans)
	perPublish := float64(autoAPI) / float64(sz.rounds)
	addRow(row{figure: "ControllerPublish, one volume, --drive-identity=auto", measured: ms(a),
		baseline: fmt.Sprintf("%s (uuid-serial, same run)", ms(s)), ratio: fmt.Sprintf("%.2f", ratio(a, s)),
		goal:    "≤ 1 API call more than uuid-serial (3)",
		calls:   fmt.Sprintf("%.1f API + %.1f download-host GET", perPublish, float64(autoDownloads)/float64(sz.rounds)),
		verdict: verdict(perPublish <= 4)})
	perRound := float64(fanPuts) / float64(sz.rounds)
	addRow(row{figure: fmt.Sprintf("Attach fan-in, --drive-identity=auto: %d distinctive drives, one server", sz.fanIn), measured: ms(f),
		baseline: fmt.Sprintf("%s (one auto publish)", ms(a)), ratio: fmt.Sprintf("%.2f", ratio(f, a)),
		goal:    "no queuing: ≤ 1.2x, ≤ 4 server PUTs",
		calls:   fmt.Sprintf("%.2f API per publish (%.1f server PUTs per %d)", float64(fanAPI)/float64(sz.rounds*sz.fanIn), perRound, sz.fanIn),
		verdict: verdict(ratio(f, a) <= 1.2 && perRound <= 4)})
}

// envAuto is env with the default controller (--drive-identity=auto).
func envAuto(t *testing.T) *harness.Env {
	return envWith(t, harness.Options{}, false)
}

// distinguish writes a mark into a drive's first bytes, as a file system
// would: its content evidence then tells it from every other drive.
func distinguish(t *testing.T, s *cloudsim.Sim, id string, i int) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(s.DataDir(), id+".img"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(fmt.Sprintf("bench drive %d", i)), 1024); err != nil {
		t.Fatal(err)
	}
}

// apiAndDownloads counts the API calls and the download-host GETs.
func apiAndDownloads(s *cloudsim.Sim) (api, downloads int) {
	for _, c := range s.Calls() {
		if strings.HasPrefix(c.Path, "/sim-download/") {
			downloads++
		} else {
			api++
		}
	}
	return api, downloads
}
