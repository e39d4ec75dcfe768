package qemu

import (
	"errors"
	"strings"
	"testing"
)

func TestChooseAccel(t *testing.T) {
	good := hostInfo{vmxOrSVM: true}
	noDev := hostInfo{kvmDev: errors.New("no such file"), vmxOrSVM: true}
	pvm := hostInfo{pvm: true}
	noFlags := hostInfo{}
	boots := func() error { return nil }
	dies := func() error { return errors.New("KVM internal error") }
	never := func() error { t.Error("the boot probe ran although the host rules decided"); return nil }
	for _, tc := range []struct {
		name, mode string
		host       hostInfo
		probe      func() error
		want       string
		reason     string
		err        bool
	}{
		{"auto on real KVM", AccelAuto, good, boots, AccelKVM, "boots", false},
		{"auto when the kernel dies under KVM", "", good, dies, AccelTCG, "did not boot", false},
		{"auto without /dev/kvm", AccelAuto, noDev, never, AccelTCG, "/dev/kvm", false},
		{"auto under nested PVM", AccelAuto, pvm, never, AccelTCG, "PVM", false},
		{"auto without vmx/svm", AccelAuto, noFlags, never, AccelTCG, "vmx", false},
		{"forced tcg", AccelTCG, good, never, AccelTCG, "forced", false},
		{"forced kvm under PVM", AccelKVM, pvm, never, AccelKVM, "forced", false},
		{"forced kvm without /dev/kvm", AccelKVM, noDev, never, "", "", true},
		{"unknown", "hvf", good, never, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reason, err := chooseAccel(tc.mode, tc.host, tc.probe)
			if (err != nil) != tc.err {
				t.Fatalf("err %v", err)
			}
			if got != tc.want || !strings.Contains(reason, tc.reason) {
				t.Fatalf("got %s (%s), want %s (%s)", got, reason, tc.want, tc.reason)
			}
		})
	}
}

func TestHasVirtFlag(t *testing.T) {
	if !hasVirtFlag("processor\t: 0\nflags\t\t: fpu vme svm lm\n") {
		t.Error("svm not seen")
	}
	if hasVirtFlag("flags\t\t: fpu vmxx hypervisor\nvmx flags\t: ept\n") {
		t.Error("vmx seen where there is none (vmxx, the 'vmx flags' line)")
	}
}
