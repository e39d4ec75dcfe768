package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// No container engine runs in CI, so the Dockerfile is checked by reading it
// and by running its build command with the Go toolchain directly.

// dockerfileLines joins backslash continuations into logical lines.
func dockerfileLines(t *testing.T) []string {
	t.Helper()
	text := strings.ReplaceAll(string(readFile(t, filepath.Join(repoRoot(t), "Dockerfile"))), "\\\n", " ")
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestDockerfilePinsAndPackages(t *testing.T) {
	lines := dockerfileLines(t)
	goMod := string(readFile(t, filepath.Join(repoRoot(t), "go.mod")))
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(goMod)
	if goVersion == nil {
		t.Fatal("no go directive in go.mod")
	}
	var froms []string
	for _, l := range lines {
		if f, ok := strings.CutPrefix(l, "FROM "); ok {
			froms = append(froms, strings.Fields(f)[0])
		}
		if strings.HasPrefix(l, "USER ") {
			t.Errorf("%q: the node plugin needs root; the controller's non-root user is set in its securityContext", l)
		}
	}
	if len(froms) != 2 {
		t.Fatalf("want a builder and a runtime stage, got FROM %v", froms)
	}
	if want := "golang:" + goVersion[1] + "-bookworm"; froms[0] != want {
		t.Errorf("builder %q, want %q (the go directive of go.mod)", froms[0], want)
	}
	if !regexp.MustCompile(`^debian:12\.\d+-slim$`).MatchString(froms[1]) {
		t.Errorf("runtime %q, want a pinned Debian 12 point release (debian:12.N-slim)", froms[1])
	}
	var install string
	for _, l := range lines {
		if strings.Contains(l, "apt-get install") {
			install = l
		}
	}
	for _, pkg := range []string{"ca-certificates", "e2fsprogs", "xfsprogs", "util-linux", "mount", "udev", "--no-install-recommends"} {
		if !slices.Contains(strings.Fields(install), pkg) {
			t.Errorf("the runtime stage does not install %s: %q", pkg, install)
		}
	}
}

// TestDockerfileBuildCommand runs the Dockerfile's go build as written, in a
// directory holding only what the build stage COPYs (a package the binary
// imports but the Dockerfile leaves out fails here, as in docker build), and
// checks that the version lands in the binary: a wrong -X path is silently
// ignored by the linker, so only running the binary shows it.
func TestDockerfileBuildCommand(t *testing.T) {
	var build string
	for _, l := range dockerfileLines(t) {
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			build = l
		}
	}
	ldflags := regexp.MustCompile(`-ldflags "([^"]+)"`).FindStringSubmatch(build)
	pkg := regexp.MustCompile(`(\./cmd/\S+)\s*$`).FindStringSubmatch(build)
	if ldflags == nil || pkg == nil || !strings.Contains(build, "CGO_ENABLED=0") {
		t.Fatalf("unexpected build command in the Dockerfile: %q", build)
	}
	const version = "v0.0.0-packaging-test"
	flags := strings.ReplaceAll(ldflags[1], "${VERSION}", version)
	bin := filepath.Join(t.TempDir(), "cloudsigma-csi-driver")
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", flags, "-o", bin, pkg[1])
	cmd.Dir = buildContext(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg[1], err, out)
	}
	out := run(t, bin, "-version")
	if got := strings.TrimSpace(string(out)); got != version {
		t.Errorf("%s -version printed %q, want %q: the Dockerfile's -X path does not reach the version variable", bin, got, version)
	}
}

// buildContext copies into a temporary directory what the build stage's
// COPY lines take from the context (sources mirror their destinations under
// WORKDIR), leaving out tests and testdata as .dockerignore does.
func buildContext(t *testing.T) string {
	t.Helper()
	root, dir := repoRoot(t), t.TempDir()
	copied := 0
	for _, l := range dockerfileLines(t) {
		if strings.HasPrefix(l, "FROM ") && copied > 0 {
			break // the runtime stage copies from the builder only
		}
		f, ok := strings.CutPrefix(l, "COPY ")
		if !ok || strings.HasPrefix(f, "--from") {
			continue
		}
		fields := strings.Fields(f)
		for _, src := range fields[:len(fields)-1] {
			copied++
			from := filepath.Join(root, filepath.Clean(src))
			err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(root, path)
				switch {
				case d.IsDir() && d.Name() == "testdata":
					return filepath.SkipDir
				case d.IsDir():
					return os.MkdirAll(filepath.Join(dir, rel), 0o755)
				case strings.HasSuffix(d.Name(), "_test.go"):
					return nil
				}
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(dir, rel), data, 0o644)
			})
			if err != nil {
				t.Fatalf("copying %s into the build context: %v", src, err)
			}
		}
	}
	if copied == 0 {
		t.Fatal("the build stage COPYs nothing from the context")
	}
	return dir
}
