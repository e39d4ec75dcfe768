package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/pkg/servercontext"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

const (
	thisServer  = "6ef0b4f0-8a8c-4b8e-9a63-3b1c2d4e5f60"
	otherServer = "1a2b3c4d-8a8c-4b8e-9a63-3b1c2d4e5f60"
)

// attached is a server context: a boot drive, two data drives attached by
// other means (one given only by URI), two CSI volumes (by meta, by name)
// and a CD-ROM on IDE.
var attached = &servercontext.Context{UUID: thisServer, Drives: []servercontext.Drive{
	{DriveUUID: "00000000-0000-4000-8000-000000000001", DevChannel: "0:0", Device: "virtio", Boot: true, Defined: true, Name: "root"},
	{DriveUUID: "00000000-0000-4000-8000-000000000002", DevChannel: "0:1", Device: "virtio", Defined: true, Name: "data"},
	{DriveUUID: "00000000-0000-4000-8000-000000000003", DevChannel: "0:2", Device: "virtio"},
	{DriveUUID: "00000000-0000-4000-8000-000000000004", DevChannel: "0:3", Device: "virtio", Defined: true, Name: "vol",
		Meta: map[string]string{"csi_driver": "csi.cloudsigma.com"}},
	{DriveUUID: "00000000-0000-4000-8000-000000000005", DevChannel: "0:4", Device: "virtio", Defined: true, Name: "pvc-5"},
	{DriveUUID: "00000000-0000-4000-8000-000000000006", DevChannel: "0:0", Device: "ide", Defined: true, Name: "install-cd"},
}}

// withContext makes newNode read sc (or fail with err) as the context.
func withContext(t *testing.T, sc *servercontext.Context, err error) {
	old := readServerContext
	readServerContext = func(context.Context, string) (*servercontext.Context, error) { return sc, err }
	t.Cleanup(func() { readServerContext = old })
}

// MaxVolumesPerNode is what the scheduler may count on: the channels left
// after the boot drive and the data drives attached by other means.
func TestNodeLimitLeavesOutOtherDrives(t *testing.T) {
	small := virtio.Channels{Controllers: 1, Units: 4} // 3 for data
	for _, tc := range []struct {
		name     string
		nodeID   string
		max      int
		channels virtio.Channels
		sc       *servercontext.Context
		err      error
		want     int64
		wantErr  string
	}{
		{name: "no --node-id: context read, two others", sc: attached, want: 17 - 2},
		{name: "--node-id: context read too", nodeID: thisServer, sc: attached, want: 15},
		{name: "a lower flag stays", nodeID: thisServer, max: 5, sc: attached, want: 5},
		{name: "a flag above the free channels is lowered", nodeID: thisServer, max: 16, sc: attached, want: 15},
		{name: "--node-id, no context: logged, not counted", nodeID: thisServer, err: errors.New("no such device"), want: 17},
		{name: "--node-id of another server: not counted", nodeID: otherServer, sc: attached, want: 17},
		{name: "no --node-id, no context: no start", err: errors.New("no such device"), wantErr: "gave no server UUID"},
		{name: "one channel left", channels: small, sc: attached, want: 1},
		{name: "no channel left: no start naming the drives", channels: virtio.Channels{Controllers: 1, Units: 3}, sc: attached,
			wantErr: "no virtio channel is left"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			withContext(t, tc.sc, tc.err)
			cfg := config{nodeID: tc.nodeID, maxVolumes: tc.max, channels: tc.channels, contextDev: "/dev/ttyS1"}
			if cfg.channels == (virtio.Channels{}) {
				cfg.channels = virtio.DefaultChannels
			}
			srv, err := newNode(context.Background(), cfg, "zrh")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("newNode: %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			info, err := srv.NodeGetInfo(context.Background(), &csi.NodeGetInfoRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if info.MaxVolumesPerNode != tc.want {
				t.Errorf("MaxVolumesPerNode = %d, want %d", info.MaxVolumesPerNode, tc.want)
			}
			if want := tc.nodeID; want != "" && info.NodeId != want || want == "" && info.NodeId != thisServer {
				t.Errorf("NodeId = %q", info.NodeId)
			}
		})
	}
}

func TestOtherDataDrives(t *testing.T) {
	var got []string
	for _, d := range otherDataDrives(attached) {
		got = append(got, d.DevChannel)
	}
	if strings.Join(got, " ") != "0:1 0:2" {
		t.Errorf("other data drives at %v, want 0:1 (named data) and 0:2 (URI only)", got)
	}
	// A second boot drive takes a channel of its own.
	two := &servercontext.Context{Drives: []servercontext.Drive{
		{DevChannel: "0:0", Device: "virtio", Boot: true}, {DevChannel: "0:1", Device: "virtio", Boot: true}}}
	if o := otherDataDrives(two); len(o) != 1 || o[0].DevChannel != "0:1" {
		t.Errorf("with two boot drives: %+v, want the second", o)
	}
}
