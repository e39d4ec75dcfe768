package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Accelerators: Config.Accel.
const (
	AccelAuto = "auto" // KVM where a guest kernel actually boots under it, TCG otherwise
	AccelKVM  = "kvm"
	AccelTCG  = "tcg" // software emulation: slower, works everywhere
)

// hostInfo is what the accelerator choice looks at.
type hostInfo struct {
	kvmDev   error // nil if /dev/kvm opens read-write
	pvm      bool  // /sys/module/kvm_pvm: KVM is nested PVM
	vmxOrSVM bool  // the CPU flags offer hardware virtualization
}

// chooseAccel applies the rule: a forced accelerator is used as it is
// (KVM only if /dev/kvm opens); auto picks KVM only where it boots a
// kernel. /dev/kvm and a successful KVM_CREATE_VM are not enough: under
// nested PVM (kvm_pvm loaded, no vmx/svm flags) a stock Debian kernel dies
// in early boot ("KVM internal error ... emulation failure") or hangs.
// bootProbe is called last, and only when everything else says KVM.
func chooseAccel(mode string, h hostInfo, bootProbe func() error) (accel, reason string, err error) {
	switch mode {
	case AccelTCG:
		return AccelTCG, "forced", nil
	case AccelKVM:
		if h.kvmDev != nil {
			return "", "", fmt.Errorf("accelerator kvm forced, but /dev/kvm is not usable: %w", h.kvmDev)
		}
		return AccelKVM, "forced", nil
	case "", AccelAuto:
	default:
		return "", "", fmt.Errorf("accelerator %q: want %s, %s or %s", mode, AccelAuto, AccelKVM, AccelTCG)
	}
	switch {
	case h.kvmDev != nil:
		return AccelTCG, fmt.Sprintf("no usable /dev/kvm (%v)", h.kvmDev), nil
	case h.pvm:
		return AccelTCG, "KVM is nested PVM (/sys/module/kvm_pvm): a stock kernel does not boot under it", nil
	case !h.vmxOrSVM:
		return AccelTCG, "no vmx or svm in the CPU flags", nil
	}
	if err := bootProbe(); err != nil {
		return AccelTCG, fmt.Sprintf("a kernel did not boot under KVM: %v", err), nil
	}
	return AccelKVM, "/dev/kvm with vmx/svm, and a kernel boots under it", nil
}

func probeHost() hostInfo {
	var h hostInfo
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		h.kvmDev = err
	} else {
		f.Close()
	}
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		h.pvm = true
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		h.vmxOrSVM = hasVirtFlag(string(b))
	}
	return h
}

// hasVirtFlag looks for vmx or svm in the flags lines of /proc/cpuinfo.
func hasVirtFlag(cpuinfo string) bool {
	for _, line := range strings.Split(cpuinfo, "\n") {
		name, flags, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "flags" {
			continue
		}
		for _, f := range strings.Fields(flags) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}

// kvmBoot remembers, per kernel, whether it boots under KVM on this host:
// the probe costs a kernel boot.
var kvmBoot struct {
	mu   sync.Mutex
	seen map[string]error
}

// probeKVMBoot boots kernel under KVM with no initramfs: a kernel that
// works gets as far as looking for a root file system, panics and (with
// panic=-1 and -no-reboot) makes QEMU exit.
func probeKVMBoot(qemuBin, kernel string) error {
	kvmBoot.mu.Lock()
	defer kvmBoot.mu.Unlock()
	if err, ok := kvmBoot.seen[kernel]; ok {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, qemuBin, "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "256",
		"-nodefaults", "-nographic", "-no-reboot", "-serial", "stdio", "-monitor", "none",
		"-kernel", kernel, "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent")
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	var err error
	switch text := out.String(); {
	case strings.Contains(text, "Kernel panic") || strings.Contains(text, "VFS:"):
		err = nil
	case ctx.Err() != nil:
		err = errors.New("no sign of the kernel after 30s")
	default:
		err = fmt.Errorf("%v: %s", runErr, lastLines(text, 3))
	}
	if kvmBoot.seen == nil {
		kvmBoot.seen = map[string]error{}
	}
	kvmBoot.seen[kernel] = err
	return err
}

// lastLines is the tail of a log, for error messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
