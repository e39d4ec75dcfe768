package identity

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloudsigma-csi/driver/internal/testenv/looptest"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/node"
	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/tests/harness"
	"github.com/cloudsigma-csi/driver/tests/sanity/sanitytest"
)

const gib = int64(1) << 30

var mountCap = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: "ext4"}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}

// env is the simulator, the controller and the node over gRPC, on a
// loop-device guest that shows disk serials as serials says.
type env struct {
	*harness.Env
	t    *testing.T
	c    csi.ControllerClient
	n    csi.NodeClient
	work string
}

func start(t *testing.T, serials string, serialsOnly bool) *env {
	return startFinder(t, serials, serialsOnly, nil)
}

// startFinder is start with a change to the node's finder.
func startFinder(t *testing.T, serials string, serialsOnly bool, mutate func(*device.VirtioFinder)) *env {
	sanitytest.RequireNodeTools(t, "mkfs.ext4")
	guest := t.TempDir()
	e := harness.Start(t, harness.Options{
		GuestDevicesDir: guest, GuestSerials: serials, SerialsOnly: serialsOnly,
		Node: func(server string) (csi.NodeServer, error) {
			f := sanitytest.GuestFinder(t, guest, server)
			if mutate != nil {
				mutate(f)
			}
			return node.New(node.Config{NodeID: server, Location: harness.Location, Finder: f})
		},
	})
	conn := e.Conn()
	return &env{Env: e, t: t, c: csi.NewControllerClient(conn), n: csi.NewNodeClient(conn), work: t.TempDir()}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) create(name string, size int64) string {
	e.t.Helper()
	resp, err := e.c.CreateVolume(ctxT(e.t), &csi.CreateVolumeRequest{
		Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: size},
		VolumeCapabilities: []*csi.VolumeCapability{mountCap},
	})
	if err != nil {
		e.t.Fatalf("create %s: %v", name, err)
	}
	return resp.GetVolume().GetVolumeId()
}

// retry calls f as the external-attacher and the kubelet do: again after
// the codes they retry (Unavailable, Aborted, NotFound for a device still
// appearing), with backoff, until ctx ends. It returns the number of
// refused tries with the last error.
func retry(ctx context.Context, f func() error, again ...codes.Code) (int, error) {
	wait := 50 * time.Millisecond
	for n := 0; ; n++ {
		err := f()
		code := status.Code(err)
		if err == nil || !containsCode(again, code) || ctx.Err() != nil {
			return n, err
		}
		select {
		case <-ctx.Done():
			return n, err
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Second)
	}
}

func containsCode(cs []codes.Code, c codes.Code) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

func (e *env) staging(vol string) string { return filepath.Join(e.work, "staging-"+vol) }

// publishStage attaches and stages vol, retrying as the sidecars would.
// waits counts the publishes refused by the attach window.
func (e *env) publishStage(ctx context.Context, vol string) (waits int, err error) {
	waits, _, err = e.publishStageContext(ctx, vol)
	return waits, err
}

// publishStageContext is publishStage, returning the publish_context.
func (e *env) publishStageContext(ctx context.Context, vol string) (waits int, pc map[string]string, err error) {
	waits, err = retry(ctx, func() error {
		resp, err := e.c.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: vol, NodeId: e.Server, VolumeCapability: mountCap})
		pc = resp.GetPublishContext()
		return err
	}, codes.Unavailable, codes.Aborted)
	if err != nil {
		return waits, nil, fmt.Errorf("publish %s: %w", vol, err)
	}
	return waits, pc, e.stage(ctx, vol, pc)
}

// stage stages vol with pc, retrying as the kubelet does.
func (e *env) stage(ctx context.Context, vol string, pc map[string]string) error {
	_, err := retry(ctx, func() error {
		_, err := e.n.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: vol, PublishContext: pc,
			StagingTargetPath: e.staging(vol), VolumeCapability: mountCap})
		return err
	}, codes.NotFound, codes.Aborted)
	if err != nil {
		return fmt.Errorf("stage %s: %w", vol, err)
	}
	return nil
}

func (e *env) unstageUnpublish(ctx context.Context, vol string) error {
	if _, err := e.n.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: vol, StagingTargetPath: e.staging(vol)}); err != nil {
		return fmt.Errorf("unstage %s: %w", vol, err)
	}
	_, err := retry(ctx, func() error {
		_, err := e.c.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: vol, NodeId: e.Server})
		return err
	}, codes.Unavailable, codes.Aborted)
	return err
}

// mountedDrive is the ground truth of a staging mount: the drive whose
// backing file is behind the mounted loop device.
func mountedDrive(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == path {
			b, err := os.ReadFile(filepath.Join("/sys/dev/block", fields[2], "loop", "backing_file"))
			if err != nil {
				return "device " + fields[2] + " has no backing file"
			}
			return strings.TrimSuffix(filepath.Base(strings.TrimSpace(string(b))), ".img")
		}
	}
	return "not mounted"
}

// handAttach attaches a drive to the server by the API alone, as an
// operator or another tool would, on the next free channel.
func (e *env) handAttach(id string) {
	e.t.Helper()
	ctx := ctxT(e.t)
	srv, err := e.Client.GetServer(ctx, e.Server)
	if err != nil {
		e.t.Fatal(err)
	}
	used := map[string]bool{}
	for _, d := range srv.Drives {
		used[d.DevChannel] = true
	}
	ch := ""
	for u := 5; u >= 0 && ch == ""; u-- { // from the top: the controller allocates from 0:0
		if c := fmt.Sprintf("2:%d", u); !used[c] {
			ch = c
		}
	}
	drives := append(srv.Drives, cloudsigma.ServerDrive{DevChannel: ch, Device: "virtio", Drive: cloudsigma.Ref{UUID: id}})
	if _, err := e.Client.UpdateServerDrives(ctx, srv, drives); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.Sim.GuestDevices()[id] == "" {
		if time.Now().After(deadline) {
			e.t.Fatalf("hand-attached drive %s has no device", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// foreignDrive creates a drive by the API, not by the driver (no ownership
// record): blank, or with an ext4 file system made on its backing file.
func (e *env) foreignDrive(name string, size int64, format bool) string {
	e.t.Helper()
	d, err := e.Client.CreateDrive(ctxT(e.t), cloudsigma.DriveCreate{Name: name, Size: size})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.Client.WaitDrive(ctxT(e.t), d.UUID, cloudsigma.WaitOptions{Timeout: time.Minute}, "unmounted"); err != nil {
		e.t.Fatal(err)
	}
	if format {
		looptest.Run(e.t, "mkfs.ext4", "-q", "-F", filepath.Join(e.Sim.DataDir(), d.UUID+".img"))
	}
	return d.UUID
}

// headDigest is the digest the node compares: the drive's first bytes.
func (e *env) headDigest(id string) string {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.Sim.DataDir(), id+".img"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, params.ContentProbeBytes)
	if _, err := f.ReadAt(b, 0); err != nil {
		e.t.Fatal(err)
	}
	return params.ContentDigest(b)
}
