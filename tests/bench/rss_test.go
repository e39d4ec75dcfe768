package bench_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Idle resident memory of the driver in each mode, a few seconds after
// start (the controller talking to a simulator), built as the image builds
// it; the baseline is the same driver built with -tags nooutofservice,
// which links no out-of-service reconciler and no Kubernetes client.
func TestIdleRSS(t *testing.T) {
	bin := t.TempDir()
	for _, b := range []struct{ out, pkg, tags string }{
		{"cloudsigma-csi-driver", "cloudsigma-csi-driver", ""},
		{"slim-driver", "cloudsigma-csi-driver", "nooutofservice"},
		{"cloudsigma-sim", "cloudsigma-sim", ""},
	} {
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-tags", b.tags, "-o", filepath.Join(bin, b.out), "../../cmd/"+b.pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v: %s", b.out, err, out)
		}
	}
	dir := t.TempDir()
	const server = "5b4a69a3-8e78-4c45-a8ba-8b13f0895e23"
	simLog := filepath.Join(dir, "sim.log")
	start(t, simLog, nil, filepath.Join(bin, "cloudsigma-sim"), "--listen", "127.0.0.1:0",
		"--username", "u@example.com", "--password", "pw", "--local-server", server)
	api := waitFor(t, simLog, regexp.MustCompile(`serving (http://\S+)`))
	env := []string{"CLOUDSIGMA_USERNAME=u@example.com", "CLOUDSIGMA_PASSWORD=pw"}
	idle := func(binary, mode string) (rss, anon, file int64) {
		args := []string{"--endpoint", "unix://" + filepath.Join(dir, binary+mode+".sock"), "--mode", mode, "--location", "sim"}
		if mode == "controller" {
			args = append(args, "--allow-insecure-http", "--api-url", api)
		} else {
			args = append(args, "--node-id", server, "--by-id-dir", dir)
		}
		p := start(t, filepath.Join(dir, binary+mode+".log"), env, filepath.Join(bin, binary), args...)
		time.Sleep(3 * time.Second)
		return rssOf(t, p.Process.Pid)
	}
	for _, mode := range []string{"controller", "node"} {
		rss, anon, file := idle("cloudsigma-csi-driver", mode)
		slim, _, _ := idle("slim-driver", mode)
		addRow(row{figure: "Idle RSS, driver --mode " + mode, measured: mib(rss),
			baseline: fmt.Sprintf("%s (built without the out-of-service reconciler: -tags nooutofservice)", mib(slim)), ratio: fmt.Sprintf("%.2f", float64(rss)/float64(slim)),
			goal: "≤ 30 MiB", calls: fmt.Sprintf("anon %s, file-backed %s", mib(anon), mib(file)), verdict: verdict(rss <= 30<<20)})
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// start runs a process for the test's lifetime, its output in logPath.
func start(t *testing.T, logPath string, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = f, f, append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait(); f.Close() })
	return cmd
}

// waitFor returns the first submatch of re in the file, waiting for it.
func waitFor(t *testing.T, path string, re *regexp.Regexp) string {
	t.Helper()
	for range 100 {
		b, _ := os.ReadFile(path)
		if m := re.FindSubmatch(b); m != nil {
			return string(m[1])
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never said %s", path, re)
	return ""
}

// rssOf reads VmRSS, RssAnon and RssFile of a process, in bytes.
func rssOf(t *testing.T, pid int) (rss, anon, file int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "RssAnon":
			anon = kb << 10
		case "RssFile":
			file = kb << 10
		}
	}
	return
}
