//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procs runs the suite's long-lived processes, each logging to WORK/NAME.log,
// and ends them in reverse start order.
type procs struct {
	work string
	list []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// start runs bin with args; a process that exits before stop is reported by
// check, with the tail of its log.
func (p *procs) start(name, bin string, env []string, args ...string) (*proc, error) {
	log, err := os.Create(filepath.Join(p.work, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	// Its own process group, so that stop reaches anything it spawns.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	pr := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		log.Close()
		close(pr.done)
	}()
	p.list = append(p.list, pr)
	return pr, nil
}

// exited says whether the process has ended, and how.
func (pr *proc) exited() (bool, error) {
	select {
	case <-pr.done:
		return true, pr.err
	default:
		return false, nil
	}
}

// check fails when any process ended on its own: a sidecar that lost its
// RBAC or crashed makes every later wait time out, so say so first.
func (p *procs) check() error {
	for _, pr := range p.list {
		if gone, err := pr.exited(); gone {
			return fmt.Errorf("%s exited (%v); its log %s ends:\n%s", pr.name, err,
				filepath.Join(p.work, pr.name+".log"), tail(filepath.Join(p.work, pr.name+".log"), 20))
		}
	}
	return nil
}

// stop ends one process: SIGTERM, then SIGKILL after grace.
func (pr *proc) stop(grace time.Duration) {
	if gone, _ := pr.exited(); gone {
		return
	}
	_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-pr.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
		<-pr.done
	}
}

// kill ends one process at once, as a power cut would, and forgets it:
// check no longer reports it.
func (p *procs) kill(pr *proc) {
	if gone, _ := pr.exited(); !gone {
		_ = syscall.Kill(-pr.cmd.Process.Pid, syscall.SIGKILL)
		<-pr.done
	}
	p.list = slices.DeleteFunc(p.list, func(x *proc) bool { return x == pr })
}

func (p *procs) stopAll() {
	for i := len(p.list) - 1; i >= 0; i-- {
		p.list[i].stop(20 * time.Second)
	}
	p.list = nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			if lines++; lines > n {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}

// eventually polls f until it succeeds, ctx ends, a process dies or a
// sidecar is denied a request (it would otherwise just wait, and so would
// we, for a rule missing from our RBAC); the error says what was last seen.
func (e *env) eventually(ctx context.Context, what string, f func(ctx context.Context) error) error {
	var last error
	for {
		if last = f(ctx); last == nil {
			return nil
		}
		if err := e.procs.check(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if d := e.denials(); len(d) > 0 {
			return fmt.Errorf("%s: a sidecar was denied by RBAC:\n%s", what, strings.Join(d, "\n"))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
