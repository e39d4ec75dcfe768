package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim/qemu/guestwire"
)

// The guest agent: commands run in the guest, readiness, the CSI stream.

// Exec runs a command in the guest through the agent.
func (vm *VM) Exec(ctx context.Context, argv []string) (guestwire.Reply, error) {
	s, err := vm.mux.Open(guestwire.KindExec)
	if err != nil {
		return guestwire.Reply{}, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	req := guestwire.Request{Argv: argv}
	if d, ok := ctx.Deadline(); ok {
		req.TimeoutMS = max(1, time.Until(d).Milliseconds())
	}
	if err := guestwire.WriteMessage(s, req); err != nil {
		return guestwire.Reply{}, err
	}
	var rep guestwire.Reply
	if err := guestwire.ReadMessage(s, &rep); err != nil {
		if ctx.Err() != nil {
			return rep, fmt.Errorf("guest exec %q: %w", argv, ctx.Err())
		}
		return rep, fmt.Errorf("guest exec %q: no reply (%w)", argv, err)
	}
	return rep, nil
}

// Run runs a command in the guest and returns its output; a failure or a
// non-zero exit is an error with the command's stderr.
func (vm *VM) Run(ctx context.Context, argv ...string) (string, error) {
	rep, err := vm.Exec(ctx, argv)
	if err != nil {
		return "", err
	}
	if rep.Error != "" || rep.Code != 0 {
		return rep.Stdout, fmt.Errorf("guest %q: exit %d %s: %s", argv, rep.Code, rep.Error, strings.TrimSpace(rep.Stderr))
	}
	return rep.Stdout, nil
}

// Ready waits until the agent answers and the node plugin's CSI socket
// exists in the guest. A guest that stops or does not get there in time is
// an error with the end of its console.
func (vm *VM) Ready(ctx context.Context) error {
	var last error
	for {
		select {
		case <-vm.exited:
			return fmt.Errorf("the guest ended while booting (%v); console: %s", vm.exit, vm.consoleTail(8))
		default:
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, last = vm.Run(actx, "test", "-S", guestwire.CSISocket)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the guest is not ready: %w (last: %v); console: %s", ctx.Err(), last, vm.consoleTail(8))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (vm *VM) consoleTail(n int) string {
	b, _ := os.ReadFile(vm.cfg.consoleLog())
	return lastLines(string(b), n)
}

// OpenCSI opens a connection to the node plugin's CSI socket in the guest.
func (vm *VM) OpenCSI() (io.ReadWriteCloser, error) {
	select {
	case <-vm.exited:
		return nil, errors.New("the guest is not running")
	default:
	}
	return vm.mux.Open(guestwire.KindCSI)
}
