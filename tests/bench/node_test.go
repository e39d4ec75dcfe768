package bench_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	mount "k8s.io/mount-utils"
	utilexec "k8s.io/utils/exec"

	"github.com/cloudsigma-csi/driver/internal/testenv"
	"github.com/cloudsigma-csi/driver/pkg/device"
	"github.com/cloudsigma-csi/driver/pkg/node"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// NodeStageVolume of a blank drive (ext4) on a loop device, against a raw
// mkfs.ext4 plus mount of a drive like it in the same run; the commands
// the stage ran, with their times, show where it spends the difference.
func TestNodeStage(t *testing.T) {
	testenv.RequireRoot(t, "NodeStageVolume formats and mounts loop devices")
	sz := benchSizes()
	guest := t.TempDir()
	timed := &timingExec{Interface: utilexec.New()}
	e := env(t, harness.Options{
		GuestDevicesDir: guest,
		Node: func(serverUUID string) (csi.NodeServer, error) {
			return node.New(node.Config{
				NodeID: serverUUID, Location: harness.Location,
				Finder:  &device.VirtioFinder{ByIDDir: guest, Trigger: device.NoTrigger, Timeout: 20 * time.Second},
				Mounter: mount.NewSafeFormatAndMount(node.DirectMounter{Interface: mount.New("")}, timed),
				Resizer: mount.NewResizeFs(timed),
			})
		},
	})
	c := csi.NewControllerClient(e.Conn())
	n := csi.NewNodeClient(e.Conn())
	var stages, raws []time.Duration
	for i := range sz.stages {
		// Two fresh drives of one size each round: NodeStageVolume on one,
		// mkfs.ext4 + mount by hand on the other. Both devices are new to
		// the kernel (a device used before keeps its blocks cached, which
		// flatters whatever runs second); the order alternates.
		var vols [2]*csi.Volume
		var pubs [2]*csi.ControllerPublishVolumeResponse
		for k := range vols {
			vol, err := createVol(ctxT(t), c, fmt.Sprintf("bench-stage-%d-%d", i, k))
			if err != nil {
				t.Fatal(err)
			}
			pub, err := publish(ctxT(t), c, vol.GetVolumeId(), e.Server)
			if err != nil {
				t.Fatal(err)
			}
			vols[k], pubs[k] = vol, pub
		}
		staging := filepath.Join(t.TempDir(), "staging")
		stage := func() {
			timed.reset()
			start := time.Now()
			if _, err := n.NodeStageVolume(ctxT(t), &csi.NodeStageVolumeRequest{VolumeId: vols[0].GetVolumeId(), StagingTargetPath: staging,
				VolumeCapability: mountCap, PublishContext: pubs[0].GetPublishContext(), VolumeContext: vols[0].GetVolumeContext()}); err != nil {
				t.Fatal(err)
			}
			stages = append(stages, time.Since(start))
			if i == 0 {
				t.Logf("NodeStageVolume ran: %s", timed.String())
			}
		}
		dev, err := filepath.EvalSymlinks(e.Sim.GuestLink(vols[1].GetVolumeId()))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		raw := func() {
			start := time.Now()
			run(t, "mkfs.ext4", "-q", "-F", "-m0", dev)
			run(t, "mount", "-t", "ext4", dev, dir)
			raws = append(raws, time.Since(start))
		}
		if i%2 == 0 {
			stage()
			raw()
		} else {
			raw()
			stage()
		}
		run(t, "umount", dir)
		if _, err := n.NodeUnstageVolume(ctxT(t), &csi.NodeUnstageVolumeRequest{VolumeId: vols[0].GetVolumeId(), StagingTargetPath: staging}); err != nil {
			t.Fatal(err)
		}
		for _, vol := range vols {
			if err := unpublish(ctxT(t), c, vol.GetVolumeId(), e.Server); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, r := median(stages), median(raws)
	addRow(row{figure: "NodeStageVolume, blank 1 GiB drive, ext4", measured: ms(s),
		baseline: fmt.Sprintf("%s (mkfs.ext4 -q + mount(8), a fresh drive of the same size)", ms(r)), ratio: fmt.Sprintf("%.2f", ratio(s, r)),
		goal: "≤ 1.1x", calls: "0", verdict: verdict(ratio(s, r) <= 1.1)})
}

func run(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

// timingExec notes each command the node runs and how long it took.
type timingExec struct {
	utilexec.Interface
	mu   sync.Mutex
	runs []string
}

func (x *timingExec) Command(cmd string, args ...string) utilexec.Cmd {
	return &timedCmd{Cmd: x.Interface.Command(cmd, args...), x: x, name: cmd + " " + strings.Join(args, " ")}
}

func (x *timingExec) reset() { x.mu.Lock(); x.runs = nil; x.mu.Unlock() }

func (x *timingExec) String() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return strings.Join(x.runs, "; ")
}

type timedCmd struct {
	utilexec.Cmd
	x    *timingExec
	name string
}

func (c *timedCmd) note(start time.Time) {
	c.x.mu.Lock()
	defer c.x.mu.Unlock()
	c.x.runs = append(c.x.runs, fmt.Sprintf("%s (%s)", c.name, time.Since(start).Round(time.Millisecond)))
}

func (c *timedCmd) CombinedOutput() ([]byte, error) {
	defer c.note(time.Now())
	return c.Cmd.CombinedOutput()
}

func (c *timedCmd) Output() ([]byte, error) {
	defer c.note(time.Now())
	return c.Cmd.Output()
}

func (c *timedCmd) Run() error {
	defer c.note(time.Now())
	return c.Cmd.Run()
}
