package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
	"github.com/cloudsigma-csi/driver/pkg/virtio"
)

func parse(t *testing.T, args ...string) config {
	t.Helper()
	var out bytes.Buffer
	cfg, err := parseFlags(args, &out)
	if err != nil {
		t.Fatalf("parseFlags(%q): %v\n%s", args, err, out.String())
	}
	return cfg
}

func TestParseFlagsDefaults(t *testing.T) {
	want := config{
		endpoint: "unix:///csi/csi.sock", mode: "all", clusterID: "default",
		byIDDir: "/dev/disk/by-id", sysDir: "/sys", contextDev: "/dev/ttyS1",
		channels: virtio.DefaultChannels, sweepInterval: 10 * time.Minute,
		maxResponseBytes: cloudsigma.DefaultMaxResponseBytes, maxListItems: cloudsigma.DefaultMaxListItems,
		outOfServiceAfter: 5 * time.Minute, outOfServiceInterval: 30 * time.Second,
		driveIdentity: "auto",
	}
	if got := parse(t); got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
}

func TestParseFlags(t *testing.T) {
	got := parse(t, "--endpoint=tcp://127.0.0.1:10000", "--mode", "controller",
		"--api-url", "https://zrh.cloudsigma.com/api/2.0/", "--location=zrh", "--allow-insecure-http",
		"--credentials-dir=/etc/cloudsigma/credentials", "--node-id", "n1", "--cluster-id=c1",
		"--by-id-dir=/b", "--sys-dir=/s", "--server-context-device=/dev/ttyS9",
		"--max-volumes-per-node=7", "--virtio-controllers=2", "--virtio-units=4",
		"--metrics-address=:9809", "--retired-sweep-interval=1m",
		"--api-max-response-bytes=1048576", "--api-max-list-items=50",
		"--out-of-service-taint", "--out-of-service-after=90s", "--out-of-service-interval=5s", "--kubeconfig=/etc/kube/config",
		"--drive-identity=no-serial", "--identity-state-dir=/st",
		"--version", "-v=0")
	want := config{
		endpoint: "tcp://127.0.0.1:10000", mode: "controller",
		apiURL: "https://zrh.cloudsigma.com/api/2.0/", location: "zrh", allowInsecureHTTP: true,
		credentialsDir: "/etc/cloudsigma/credentials", nodeID: "n1", clusterID: "c1",
		byIDDir: "/b", sysDir: "/s", contextDev: "/dev/ttyS9",
		maxVolumes: 7, channels: virtio.Channels{Controllers: 2, Units: 4},
		metricsAddress: ":9809", sweepInterval: time.Minute,
		maxResponseBytes: 1 << 20, maxListItems: 50,
		outOfServiceTaint: true, outOfServiceAfter: 90 * time.Second, outOfServiceInterval: 5 * time.Second, kubeconfig: "/etc/kube/config",
		showVersion: true, driveIdentity: "no-serial", identityStateDir: "/st",
	}
	if got != want {
		t.Errorf("parsed %+v, want %+v", got, want)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		naming string // in the error and the output
	}{
		{"unknown flag", []string{"--no-such-flag"}, "no-such-flag"},
		{"not a number", []string{"--max-volumes-per-node=many"}, "max-volumes-per-node"},
		{"not a duration", []string{"--out-of-service-after=5"}, "out-of-service-after"},
		// A bool flag's value given as a separate word would end the flags
		// there and drop the rest.
		{"stray argument", []string{"--allow-insecure-http", "false", "--mode=node"}, `"false"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := parseFlags(tc.args, &out)
			if err == nil || !strings.Contains(err.Error(), tc.naming) {
				t.Fatalf("parseFlags(%q): %v, want an error naming %s", tc.args, err, tc.naming)
			}
			if !strings.Contains(out.String(), tc.naming) || !strings.Contains(out.String(), "Usage:") {
				t.Errorf("output lacks the error or the usage:\n%s", out.String())
			}
		})
	}
	var out bytes.Buffer
	if _, err := parseFlags([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-max-volumes-per-node") {
		t.Errorf("--help: %v, want flag.ErrHelp and the usage; output:\n%s", err, out.String())
	}
}

// The values the flags cannot check are refused by validate, and by run
// before it serves anything.
func TestInvalidConfigIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		naming string
	}{
		{"mode", []string{"--mode=both"}, "--mode"},
		{"mode empty", []string{"--mode="}, "--mode"},
		{"max volumes beyond the channels", []string{"--max-volumes-per-node=18"}, "--max-volumes-per-node"},
		{"max volumes beyond fewer channels", []string{"--virtio-controllers=1", "--virtio-units=4", "--max-volumes-per-node=4"}, "--max-volumes-per-node"},
		{"max volumes negative", []string{"--max-volumes-per-node=-1"}, "--max-volumes-per-node"},
		{"no virtio units", []string{"--virtio-units=0"}, "unit"},
		{"out-of-service grace negative", []string{"--out-of-service-taint", "--out-of-service-after=-1m"}, "--out-of-service-after"},
		{"out-of-service interval zero", []string{"--out-of-service-taint", "--out-of-service-interval=0s"}, "--out-of-service-interval"},
		{"out-of-service in node mode", []string{"--mode=node", "--out-of-service-taint"}, "--mode=controller"},
		{"kubeconfig without out-of-service", []string{"--kubeconfig=/etc/kube/config"}, "--out-of-service-taint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			endpoint := filepath.Join(t.TempDir(), "csi.sock")
			cfg := parse(t, append([]string{"--endpoint=unix://" + endpoint, "--location=zrh", "--node-id=n1"}, tc.args...)...)
			err := cfg.validate()
			if err == nil || !strings.Contains(err.Error(), tc.naming) {
				t.Fatalf("validate: %v, want an error naming %s", err, tc.naming)
			}
			if err := run(context.Background(), cfg); err == nil || err.Error() != cfg.validate().Error() {
				t.Fatalf("run: %v, want the validate error", err)
			}
		})
	}
	for _, args := range [][]string{
		nil,
		{"--mode=node", "--max-volumes-per-node=17"},
		{"--virtio-controllers=1", "--virtio-units=4", "--max-volumes-per-node=3"},
		{"--mode=controller", "--out-of-service-taint"},
		{"--out-of-service-taint", "--out-of-service-after=0", "--kubeconfig=/etc/kube/config"},
		{"--mode=node", "--out-of-service-after=1m"}, // unused, harmless
	} {
		if err := parse(t, args...).validate(); err != nil {
			t.Errorf("validate %q: %v", args, err)
		}
	}
}

// Without --api-url or --location the driver cannot name its topology:
// run says which flags to set.
func TestRunNeedsAPIURLOrLocation(t *testing.T) {
	cfg := parse(t, "--endpoint=unix://"+filepath.Join(t.TempDir(), "csi.sock"), "--mode=controller")
	err := run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "--api-url") || !strings.Contains(err.Error(), "--location") {
		t.Fatalf("run: %v, want an error naming --api-url and --location", err)
	}
}
