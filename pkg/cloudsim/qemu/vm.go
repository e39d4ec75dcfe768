// Package qemu runs a simulated CloudSigma server as a real Linux guest
// under QEMU, for the simulator (pkg/cloudsim) and its tests: the guest
// image of hack/guest-image.sh (a Debian cloud kernel, the node plugin,
// mount/blkid/mkfs), drives hot-plugged as virtio-blk disks with a serial,
// the server context on the guest's second serial port, and CSI carried
// from the node plugin in the guest to a unix socket on the host.
//
// The machine is q35 with one pcie-root-port per hot-pluggable disk (slots
// tracks them), no network at all, and a virtio-serial port that only the
// host opens streams on (guestwire). The accelerator is KVM where a kernel
// boots under it and TCG otherwise (chooseAccel).
//
// It is not a general VM manager: one process per guest, started paused so
// the drives a server already has are in place before its kernel looks.
package qemu

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudsigma-csi/driver/pkg/cloudsim/qemu/guestwire"
)

// Config describes one guest.
type Config struct {
	Name     string // for logs and the QEMU process name
	ImageDir string // vmlinuz and initrd.img (hack/guest-image.sh OUT_DIR)
	// Dir holds the guest's sockets and logs (console.log, qemu.log). Unix
	// socket paths are limited to 107 bytes: keep it short.
	Dir       string
	QEMU      string // default qemu-system-x86_64 on PATH
	Accel     string // AccelAuto (default), AccelKVM or AccelTCG
	MemoryMiB int    // default 512
	CPUs      int    // default 1
	Slots     int    // hot-plug ports, default 18 (the driver's default virtio channels)
	// NodeArgs are extra flags of the node plugin in the guest (they go on
	// the kernel command line, so no spaces or commas).
	NodeArgs []string
	// Context answers the guest's server-context requests with the server's
	// current definition.
	Context func() map[string]any
	// Disks are plugged before the guest starts running.
	Disks []Disk
}

// Disk is a drive to plug: ID names it for later calls (the drive UUID).
type Disk struct {
	ID     string
	File   string
	Serial string // "" = a disk without a serial
}

// VM is one running guest.
type VM struct {
	cfg         Config
	Accel       string // the accelerator in use
	AccelReason string // why it was chosen
	Started     time.Time

	cmd    *exec.Cmd
	exited chan struct{} // closed when QEMU has exited
	exit   error
	qmp    *qmp
	mux    *guestwire.Mux
	conns  []net.Conn

	mu    sync.Mutex // disks, slots, seq
	disks map[string]*disk
	slots *slots
	seq   int
}

type disk struct {
	Disk
	seq        int // names the disk in QEMU: block node names hold at most 31 bytes
	port       string
	unplugging bool
	gone       chan struct{} // closed by QEMU's DEVICE_DELETED
}

func (d *disk) qomID() string { return fmt.Sprintf("disk%d", d.seq) }
func (d *disk) node() string  { return fmt.Sprintf("blk%d", d.seq) }

// Paths in the guest's directory.
func (c Config) consoleLog() string { return filepath.Join(c.Dir, "console.log") }
func (c Config) qemuLog() string    { return filepath.Join(c.Dir, "qemu.log") }
func (c Config) sock(name string) string {
	return filepath.Join(c.Dir, name+".sock")
}

// ConsoleLog is the file the guest's console (ttyS0) is written to.
func (vm *VM) ConsoleLog() string { return vm.cfg.consoleLog() }

// Start starts QEMU paused, connects to it, plugs cfg.Disks and lets the
// guest run. It does not wait for the guest to boot: Ready does. Where
// QEMU cannot start, the error says why (its own message included).
func Start(ctx context.Context, cfg Config) (*VM, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	accel, reason, err := chooseAccel(cfg.Accel, probeHost(), func() error {
		return probeKVMBoot(cfg.QEMU, filepath.Join(cfg.ImageDir, "vmlinuz"))
	})
	if err != nil {
		return nil, err
	}
	vm := &VM{cfg: cfg, Accel: accel, AccelReason: reason, exited: make(chan struct{}),
		disks: map[string]*disk{}, slots: newSlots(cfg.Slots)}
	if err := vm.startProcess(); err != nil {
		return nil, err
	}
	if err := vm.connect(ctx); err != nil {
		vm.Kill()
		return nil, vm.withLog(err)
	}
	for _, d := range cfg.Disks {
		if err := vm.AddDisk(ctx, d); err != nil {
			vm.Kill()
			return nil, vm.withLog(err)
		}
	}
	if _, err := vm.qmp.call(ctx, "cont", nil); err != nil {
		vm.Kill()
		return nil, vm.withLog(err)
	}
	return vm, nil
}

func (c *Config) defaults() error {
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	bin, err := exec.LookPath(c.QEMU)
	if err != nil {
		return fmt.Errorf("QEMU cannot start: %s is not installed (hack/install-tools.sh installs qemu-system-x86): %w", c.QEMU, err)
	}
	c.QEMU = bin
	for _, f := range []string{"vmlinuz", "initrd.img"} {
		if _, err := os.Stat(filepath.Join(c.ImageDir, f)); err != nil {
			return fmt.Errorf("QEMU cannot start: no guest image (hack/guest-image.sh %s builds it): %w", c.ImageDir, err)
		}
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = 512
	}
	if c.CPUs == 0 {
		c.CPUs = 1
	}
	if c.Slots == 0 {
		c.Slots = 18
	}
	if c.Context == nil {
		c.Context = func() map[string]any { return map[string]any{} }
	}
	for _, a := range c.NodeArgs {
		if strings.ContainsAny(a, " ,\t\n\"") {
			return fmt.Errorf("node argument %q: no spaces, commas or quotes (it goes on the kernel command line)", a)
		}
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return err
	}
	if n := len(c.sock("context")); n > 107 {
		return fmt.Errorf("guest directory %s is too long for unix sockets (%d bytes)", c.Dir, n)
	}
	for _, s := range []string{"qmp", "context", "guest"} {
		_ = os.Remove(c.sock(s))
	}
	return nil
}

func (vm *VM) args() []string {
	c := vm.cfg
	cpu := "max"
	if vm.Accel == AccelKVM {
		cpu = "host"
	}
	cmdline := "console=ttyS0 panic=-1 quiet"
	if len(c.NodeArgs) > 0 {
		cmdline += " csi.args=" + strings.Join(c.NodeArgs, ",")
	}
	args := []string{
		"-name", "guest=" + c.Name,
		"-machine", "q35", "-accel", vm.Accel, "-cpu", cpu,
		"-m", fmt.Sprint(c.MemoryMiB), "-smp", fmt.Sprint(c.CPUs),
		// No default devices (no NIC: the guest has no network), no
		// display, no monitor but QMP; a guest reboot ends QEMU.
		"-nodefaults", "-nographic", "-monitor", "none", "-no-reboot",
		"-S", // paused: the server's drives go in before the kernel looks
		"-kernel", filepath.Join(c.ImageDir, "vmlinuz"),
		"-initrd", filepath.Join(c.ImageDir, "initrd.img"),
		"-append", cmdline,
		"-qmp", "unix:" + c.sock("qmp") + ",server=on,wait=off",
		// ttyS0: the console, to a file. ttyS1: the server context.
		"-chardev", "file,id=console,path=" + qemuEscape(c.consoleLog()),
		"-serial", "chardev:console",
		"-chardev", "socket,id=context,path=" + qemuEscape(c.sock("context")) + ",server=on,wait=off",
		"-serial", "chardev:context",
		// The agent's port: CSI and commands (guestwire).
		"-device", "virtio-serial-pci,id=vser",
		"-chardev", "socket,id=guest,path=" + qemuEscape(c.sock("guest")) + ",server=on,wait=off",
		"-device", "virtserialport,bus=vser.0,chardev=guest,name=" + guestwire.PortName,
	}
	for i, p := range vm.slots.ports {
		// io-reserve=0: virtio-blk needs no I/O ports, and 18 bridges
		// asking for 4 KiB of the 64 KiB I/O space each would not fit.
		args = append(args, "-device", fmt.Sprintf("pcie-root-port,id=%s,chassis=%d,io-reserve=0", p, i+1))
	}
	return args
}

// qemuEscape doubles commas, QEMU's escape inside option values.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func (vm *VM) startProcess() error {
	logf, err := os.Create(vm.cfg.qemuLog())
	if err != nil {
		return err
	}
	_ = os.Remove(vm.cfg.consoleLog())
	cmd := exec.Command(vm.cfg.QEMU, vm.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// QEMU dies with the simulator, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("QEMU cannot start: %w", err)
	}
	vm.cmd, vm.Started = cmd, time.Now()
	go func() {
		vm.exit = cmd.Wait()
		logf.Close()
		close(vm.exited)
	}()
	return nil
}

// connect dials QMP, the server context and the agent's port.
func (vm *VM) connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	qc, err := vm.dial(ctx, "qmp")
	if err != nil {
		return err
	}
	if vm.qmp, err = newQMP(ctx, qc); err != nil {
		return err
	}
	go vm.watchDeletions()
	cc, err := vm.dial(ctx, "context")
	if err != nil {
		return err
	}
	go func() { _ = ServeContext(cc, vm.cfg.Context) }()
	gc, err := vm.dial(ctx, "guest")
	if err != nil {
		return err
	}
	vm.mux = guestwire.NewMux(gc, nil, rand.Uint32()>>1)
	go func() { _ = vm.mux.Serve(gc) }()
	return vm.mux.Reset()
}

// dial connects to one of QEMU's sockets, which appear a moment after
// QEMU starts.
func (vm *VM) dial(ctx context.Context, name string) (net.Conn, error) {
	for {
		c, err := net.Dial("unix", vm.cfg.sock(name))
		if err == nil {
			vm.conns = append(vm.conns, c)
			return c, nil
		}
		select {
		case <-vm.exited:
			return nil, fmt.Errorf("QEMU exited at start (%v)", vm.exit)
		case <-ctx.Done():
			return nil, fmt.Errorf("QEMU's %s socket: %w (last: %v)", name, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// withLog adds the end of QEMU's own output to an error: its reason.
func (vm *VM) withLog(err error) error {
	b, _ := os.ReadFile(vm.cfg.qemuLog())
	if s := strings.TrimSpace(string(b)); s != "" {
		return fmt.Errorf("QEMU cannot start: %w; QEMU says: %s", err, lastLines(s, 5))
	}
	return fmt.Errorf("QEMU cannot start: %w", err)
}

// Done is closed when QEMU has exited.
func (vm *VM) Done() <-chan struct{} { return vm.exited }

// ExitErr is how QEMU exited (after Done).
func (vm *VM) ExitErr() error { return vm.exit }

// Kill ends QEMU with SIGKILL, as a crash of the host process would, and
// waits for it.
func (vm *VM) Kill() {
	if vm.cmd.Process != nil {
		_ = vm.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-vm.exited
	vm.closeConns()
}

func (vm *VM) closeConns() {
	for _, c := range vm.conns {
		c.Close()
	}
}

// Shutdown powers the guest off from inside (sync, unmount, poweroff by
// busybox init), as an ACPI shutdown would; if it has not ended when ctx
// does, QEMU is told to quit, and then killed.
func (vm *VM) Shutdown(ctx context.Context) error {
	defer vm.closeConns()
	select {
	case <-vm.exited:
		return nil
	default:
	}
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := vm.Exec(ectx, []string{"poweroff"})
	cancel()
	if err == nil {
		select {
		case <-vm.exited:
			return nil
		case <-ctx.Done():
		}
	}
	qctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = vm.qmp.call(qctx, "quit", nil)
	select {
	case <-vm.exited:
		return fmt.Errorf("the guest did not power off (%v): QEMU was told to quit", err)
	case <-time.After(5 * time.Second):
		vm.Kill()
		return fmt.Errorf("the guest did not power off (%v) and QEMU did not quit: killed", err)
	}
}
