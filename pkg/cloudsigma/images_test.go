package cloudsigma_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
)

func TestUploadDownloadImage(t *testing.T) {
	t.Parallel()
	const size = 4 << 20 // a multiple of the 64 KiB size granule
	e := newSimEnv(t, func(c *cloudsim.Config) {
		caps := cloudsim.DefaultCapabilities()
		caps.Drives["dssd"] = cloudsim.SizeLimits{Min: 1 << 20, Max: caps.Drives["dssd"].Max}
		c.Capabilities = caps
	}, nil)
	ctx := ctxT(t)
	img := make([]byte, size)
	if _, err := rand.Read(img); err != nil {
		t.Fatal(err)
	}
	id, err := e.c.UploadImage(ctx, bytes.NewReader(img), size)
	if err != nil {
		t.Fatal(err)
	}
	if sd, ok := e.sim.Drive(id); !ok || sd.Size != size {
		t.Fatalf("uploaded drive %s: %+v, %v", id, sd, ok)
	}
	if _, err := e.c.WaitDrive(ctx, id, fastWait, cloudsigma.StatusUnmounted); err != nil {
		t.Fatal(err)
	}
	body, n, err := e.c.DownloadImage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	h := sha256.New()
	copied, err := io.Copy(h, body)
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(img); copied != size || !bytes.Equal(h.Sum(nil), want[:]) || (n != -1 && n != size) {
		t.Fatalf("downloaded %d bytes (length %d), sha256 %x, want %d bytes %x", copied, n, h.Sum(nil), size, want)
	}
	// The image came through the documented redirect, which was followed.
	if dl := e.settledCalls(http.MethodGet, "/drives/"+id+"/download/", 1); len(dl) != 1 || dl[0].Status/100 != 3 {
		t.Errorf("download call log: %+v", e.sim.Calls())
	}
	if _, _, err := e.c.DownloadImage(ctx, "00000000-0000-0000-0000-000000000000"); !cloudsigma.IsNotFound(err) {
		t.Errorf("download of a missing drive: %v", err)
	}
	if _, err := e.c.UploadImage(ctx, bytes.NewReader(nil), 0); err == nil {
		t.Error("an empty upload was accepted")
	}
}

// slowReader yields its data in chunks with a pause before each.
type slowReader struct {
	data  []byte
	chunk int
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p[:min(len(p), s.chunk)], s.data)
	s.data = s.data[n:]
	return n, nil
}

func uploadEnv(t *testing.T, cli func(*cloudsigma.Config)) *simEnv {
	return newSimEnv(t, func(c *cloudsim.Config) {
		caps := cloudsim.DefaultCapabilities()
		caps.Drives["dssd"] = cloudsim.SizeLimits{Min: 1 << 20, Max: caps.Drives["dssd"].Max}
		c.Capabilities = caps
	}, cli)
}

// TestImageTransfersOutliveTheAPITimeout: http.Client.Timeout covers
// reading the body, so an overall API timeout would cut off any image that
// takes longer to move. Transfers stream under ctx alone.
func TestImageTransfersOutliveTheAPITimeout(t *testing.T) {
	t.Parallel()
	const size = 1 << 20
	e := uploadEnv(t, func(c *cloudsigma.Config) { c.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond} })
	ctx := ctxT(t)
	img := make([]byte, size)
	if _, err := rand.Read(img); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	id, err := e.c.UploadImage(ctx, &slowReader{data: img, chunk: size / 8, pause: 80 * time.Millisecond}, size)
	if err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Fatalf("the upload took only %v; the test proves nothing", el)
	}
	if _, err := e.c.WaitDrive(ctx, id, fastWait, cloudsigma.StatusUnmounted); err != nil {
		t.Fatal(err)
	}
	body, _, err := e.c.DownloadImage(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, body, 4096); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // a slow consumer
	if _, err := io.Copy(h, body); err != nil {
		t.Fatalf("slow download: %v", err)
	}
	if want := sha256.Sum256(img); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("downloaded image differs")
	}
	// API calls keep their timeout.
	e.sim.InjectFault(cloudsim.Fault{PathPrefix: "/capabilities/", Latency: time.Second})
	if _, err := e.c.GetCapabilities(ctx); err == nil {
		t.Error("an API call outlived its 300ms timeout")
	}
}

// TestUploadLengthMismatchCreatesNoDrive: Content-Length "determines the
// size of the drive which will be created". A source longer or shorter
// than declared fails the upload before the last byte is sent, so neither
// a truncated nor a padded drive appears.
func TestUploadLengthMismatchCreatesNoDrive(t *testing.T) {
	t.Parallel()
	const size = 1 << 20
	e := uploadEnv(t, nil)
	ctx := ctxT(t)
	img := make([]byte, size+1)
	for _, tc := range []struct {
		name string
		data []byte
	}{{"one byte too many", img}, {"much too long", append(img, img...)}, {"one byte short", img[:size-1]}, {"half", img[:size/2]}} {
		_, err := e.c.UploadImage(ctx, bytes.NewReader(tc.data), size)
		if err == nil || !strings.Contains(err.Error(), "declared size") {
			t.Errorf("%s: want a size mismatch error, got %v", tc.name, err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(e.sim.Drives()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if ds := e.sim.Drives(); len(ds) != 0 {
		t.Errorf("mismatched uploads created drives: %+v", ds)
	}
	// The exact length still works.
	if _, err := e.c.UploadImage(ctx, bytes.NewReader(img[:size]), size); err != nil {
		t.Fatal(err)
	}
}
