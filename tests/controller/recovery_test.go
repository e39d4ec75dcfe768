package controller_test

import (
	"net/http"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// The clone happened but its response was lost: the retry finds the clone
// (which still carries its source's meta) by name and finishes it.
func TestLostCloneResponseIsRecovered(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	src := create(t, c, "pvc-lost-src", gib, nil)
	e.Sim.InjectFault(cloudsim.Fault{Method: "POST", PathPrefix: "/drives/" + src.GetVolumeId() + "/action/", Status: 500, After: true, Count: 1})
	req := &csi.CreateVolumeRequest{Name: "pvc-lost-clone", VolumeCapabilities: []*csi.VolumeCapability{mountCap},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 2 * gib}, VolumeContentSource: volumeSource(src.GetVolumeId())}
	var vol *csi.Volume
	retry(t, "clone", func() error {
		resp, err := c.CreateVolume(ctxT(t), req)
		vol = resp.GetVolume()
		return err
	})
	if got := drivesNamed(e, "pvc-lost-clone"); len(got) != 1 || got[0].UUID != vol.GetVolumeId() || got[0].Size < 2*gib {
		t.Fatalf("drives after a lost clone response: %+v, volume %v", got, vol)
	}
	if !listVolumeIDs(t, c)[vol.GetVolumeId()] {
		t.Fatal("recovered clone missing from ListVolumes")
	}
}

// An operator deletes a tag the driver has cached (here: the StorageClass's
// extra tag). The create that trips over it looks the tags up again instead
// of failing until the driver restarts.
func TestDeletedTagIsLookedUpAgain(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	tagged := map[string]string{"tags": "team-gone"}
	if _, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-tag-first",
		VolumeCapabilities: []*csi.VolumeCapability{mountCap}, Parameters: tagged}); err != nil {
		t.Fatal(err)
	}
	tags, err := e.NewClient().ListTags(ctxT(t), cloudsigma.Filter{Name: []string{"team-gone"}})
	if err != nil || len(tags) != 1 {
		t.Fatalf("tag team-gone: %v %v", tags, err)
	}
	req, _ := http.NewRequest(http.MethodDelete, e.APIURL+"tags/"+tags[0].UUID+"/", nil)
	req.SetBasicAuth(harness.Username, harness.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("deleting the tag: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: "pvc-tag-second",
		VolumeCapabilities: []*csi.VolumeCapability{mountCap}, Parameters: tagged}); err != nil {
		t.Fatalf("create after the tag was deleted: %v", err)
	}
	tags, err = e.NewClient().ListTags(ctxT(t), cloudsigma.Filter{Name: []string{"team-gone"}})
	if err != nil || len(tags) != 1 {
		t.Fatalf("tag team-gone was not created again: %v %v", tags, err)
	}
}
