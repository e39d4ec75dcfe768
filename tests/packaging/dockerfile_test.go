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

// stage is one FROM of the Dockerfile and the lines up to the next.
type stage struct {
	name, base string
	lines      []string
}

// dockerfileStages splits the Dockerfile into its stages, with each FROM's
// base resolved through the ARGs declared before the first FROM.
func dockerfileStages(t *testing.T) (args map[string]string, stages []stage) {
	t.Helper()
	args = map[string]string{}
	for _, l := range dockerfileLines(t) {
		if f, ok := strings.CutPrefix(l, "FROM "); ok {
			fields := strings.Fields(f)
			st := stage{base: os.Expand(fields[0], func(k string) string { return args[k] })}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if kv, ok := strings.CutPrefix(l, "ARG "); ok {
				k, v, _ := strings.Cut(kv, "=")
				args[k] = v
			}
			continue
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, l)
	}
	return args, stages
}

var pinnedImage = regexp.MustCompile(`^([a-z0-9./-]+):([A-Za-z0-9._-]+)@sha256:[0-9a-f]{64}$`)

// TestDockerfileImages: every base is pinned by tag and digest; the
// controller image is distroless (no shell, no package manager) as user
// 65532; the node image installs only what the node plugin executes and
// runs as root; the default target is the node image.
func TestDockerfileImages(t *testing.T) {
	args, stages := dockerfileStages(t)
	goMod := string(readFile(t, filepath.Join(repoRoot(t), "go.mod")))
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(goMod)
	if goVersion == nil {
		t.Fatal("no go directive in go.mod")
	}
	var names []string
	for _, st := range stages {
		names = append(names, st.name)
		m := pinnedImage.FindStringSubmatch(st.base)
		if m == nil {
			t.Errorf("stage %s: base %q is not repository:tag@sha256:<digest>", st.name, st.base)
		}
	}
	if !slices.Equal(names, []string{"build", "controller", "node"}) {
		t.Fatalf("stages %v, want build, controller, node (node last: the default target)", names)
	}
	if want := "golang:" + goVersion[1] + "-bookworm@"; !strings.HasPrefix(stages[0].base, want) {
		t.Errorf("builder %q, want %s... (the go directive of go.mod)", stages[0].base, want)
	}
	if want := "gcr.io/distroless/static-debian12:nonroot@"; !strings.HasPrefix(stages[1].base, want) {
		t.Errorf("controller base %q, want %s...", stages[1].base, want)
	}
	if !regexp.MustCompile(`^debian:12\.\d+-slim@`).MatchString(stages[2].base) {
		t.Errorf("node base %q, want a pinned Debian 12 point release (debian:12.N-slim@sha256:...)", stages[2].base)
	}
	for _, k := range []string{"GO_IMAGE", "CONTROLLER_BASE", "NODE_BASE"} {
		if args[k] == "" {
			t.Errorf("no ARG %s before the first FROM: hack/pin-images.sh rewrites these", k)
		}
	}
	ctrl := stages[1].lines
	if !slices.Contains(ctrl, "USER 65532:65532") {
		t.Errorf("the controller stage does not run as 65532 (distroless nonroot): %q", ctrl)
	}
	for _, l := range ctrl {
		if strings.HasPrefix(l, "RUN ") || (strings.HasPrefix(l, "COPY ") && !strings.HasPrefix(l, "COPY --from=build ")) {
			t.Errorf("controller stage %q: it takes the binary from the build stage and nothing else", l)
		}
	}
	var install string
	for _, l := range stages[2].lines {
		if strings.HasPrefix(l, "USER ") {
			t.Errorf("node stage %q: the node plugin needs root", l)
		}
		if strings.Contains(l, "apt-get install") {
			install = l
		}
	}
	if !strings.Contains(install, "apt-get upgrade -y") {
		t.Errorf("the node stage does not upgrade the base's packages: %q", install)
	}
	fields := strings.Fields(install)
	i := slices.Index(fields, "--no-install-recommends")
	if i < 0 {
		t.Fatalf("the node stage installs without --no-install-recommends: %q", install)
	}
	var pkgs []string
	for _, f := range fields[i+1:] {
		if f == "&&" {
			break
		}
		pkgs = append(pkgs, f)
	}
	slices.Sort(pkgs)
	if want := []string{"e2fsprogs", "mount", "udev", "util-linux", "xfsprogs"}; !slices.Equal(pkgs, want) {
		t.Errorf("the node stage installs %v, want exactly %v (what the node plugin executes)", pkgs, want)
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
