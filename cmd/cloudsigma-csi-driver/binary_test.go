package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The built command: --version prints the version stamped with -ldflags the
// way the Makefile does, --help exits 0, a bad flag exits 2 and an invalid
// config 1.
func TestBuiltCommand(t *testing.T) {
	const version = "v0.0.0-binary-test"
	bin := filepath.Join(t.TempDir(), "cloudsigma-csi-driver")
	// -buildvcs=false: the version comes from -ldflags, and a checkout
	// owned by another user would make the VCS stamp fail.
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin,
		"-ldflags", "-X github.com/cloudsigma-csi/driver/pkg/driver.version="+version, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // exactly, when the output goes to stdout
		stderr string // contained
	}{
		{[]string{"--version"}, 0, version + "\n", ""},
		{[]string{"--help"}, 0, "", "The CloudSigma CSI driver (" + version + ")"},
		{[]string{"--no-such-flag"}, 2, "", "flag provided but not defined: -no-such-flag"},
		{[]string{"--mode=both", "--location=zrh"}, 1, "", "--mode must be controller, node or all"},
		// Configuration errors name the flag or variable that fixes them.
		{[]string{"--mode=controller", "--api-url=http://127.0.0.1:1/api/2.0/"}, 1, "", "--allow-insecure-http"},
		{[]string{"--mode=controller", "--api-url=https://u:hunter2@zrh.cloudsigma.com/api/2.0/"}, 1, "", "--credentials-dir"},
		{[]string{"--mode=controller", "--location=zrh"}, 1, "", "CLOUDSIGMA_USERNAME"},
		{[]string{"--mode=controller", "--location=zrh", "--endpoint=tcp://0.0.0.0:10000"}, 1, "", "loopback"},
		{[]string{"--mode=node", "--location=zrh", "--out-of-service-taint"}, 1, "", "--mode=controller"},
		{[]string{"--mode=controller", "--location=zrh", "--out-of-service-taint"}, 1, "", "--kubeconfig"},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"} // no CLOUDSIGMA_* from the caller
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if strings.Contains(stderr.String(), "hunter2") {
			t.Errorf("%q: stderr shows the password: %q", tc.args, stderr.String())
		}
		if code != tc.code || stdout.String() != tc.stdout || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}
