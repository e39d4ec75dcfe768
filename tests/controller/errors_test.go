package controller_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim"
	"github.com/cloudsigma-csi/driver/tests/harness"
)

// Cloud errors keep their meaning over gRPC, carry the API request id, and
// never the credentials.
func TestCloudErrorsAreMappedWithoutCredentials(t *testing.T) {
	e := harness.Start(t, harness.Options{})
	c := csi.NewControllerClient(e.Conn())
	var logs bytes.Buffer
	klog.LogToStderr(false)
	klog.SetOutput(&logs)
	t.Cleanup(func() { klog.SetOutput(os.Stderr); klog.LogToStderr(true) })
	secret := base64.StdEncoding.EncodeToString([]byte(harness.Username + ":" + harness.Password))
	for i, tc := range []struct {
		status int
		want   codes.Code
	}{
		{401, codes.Unauthenticated},
		{402, codes.ResourceExhausted},
		{403, codes.PermissionDenied},
		{404, codes.NotFound},
	} {
		e.Sim.InjectFault(cloudsim.Fault{Method: "POST", PathPrefix: "/drives/", Status: tc.status})
		_, err := c.CreateVolume(ctxT(t), &csi.CreateVolumeRequest{Name: fmt.Sprintf("pvc-err-%d", i),
			VolumeCapabilities: []*csi.VolumeCapability{mountCap}})
		e.Sim.ClearFaults()
		if status.Code(err) != tc.want {
			t.Errorf("API %d: %v, want %s", tc.status, err, tc.want)
		}
		msg := status.Convert(err).Message()
		if !strings.Contains(msg, "request id") {
			t.Errorf("API %d: message %q lacks the request id", tc.status, msg)
		}
		if strings.Contains(msg, harness.Password) || strings.Contains(msg, secret) {
			t.Errorf("API %d: message leaks credentials: %q", tc.status, msg)
		}
	}
	klog.Flush()
	if out := logs.String(); strings.Contains(out, harness.Password) || strings.Contains(out, secret) {
		t.Fatal("logs leak credentials")
	}
	if !strings.Contains(logs.String(), "request id") {
		t.Fatal("failure logs lack the API request id")
	}
}
