package kernellab

import (
	"debug/elf"
	"fmt"
	"runtime"
)

// Arch is a CPU architecture the lab boots guests of. Its Name is both
// Debian's and Go's (GOARCH) name for it.
type Arch struct {
	Name string
	// QEMU is the system emulator, from Debian's qemu-system-x86 or
	// qemu-system-arm package.
	QEMU string
	// Machine selects the board: arm64 has no default one.
	Machine []string
	// TCGCPU is the CPU QEMU emulates: every feature QEMU has ("max"), so
	// the guest kernel runs the code paths real current hardware does. On
	// arm64 pointer authentication uses QEMU's implementation-defined hash
	// instead of the architected QARMA5 (pauth-impdef=on): the kernel signs
	// and checks return addresses in every function (Debian's
	// CONFIG_ARM64_PTR_AUTH_KERNEL), QARMA5 is costly to emulate, and which
	// algorithm the CPU implements is the CPU's business (the kernel and
	// the BPF JIT issue the same PACIASP/AUTIASP either way).
	TCGCPU string
	// Console is the serial port the kernel writes to.
	Console string
	// ELF is the machine of the architecture's executables, which the
	// initramfs checks before a guest fails with "not found".
	ELF elf.Machine
}

var arches = []Arch{
	{Name: "amd64", QEMU: "qemu-system-x86_64", TCGCPU: "max", Console: "ttyS0", ELF: elf.EM_X86_64},
	{Name: "arm64", QEMU: "qemu-system-aarch64", Machine: []string{"-M", "virt"}, TCGCPU: "max,pauth-impdef=on", Console: "ttyAMA0", ELF: elf.EM_AARCH64},
}

// HostArch is the architecture this program runs on.
func HostArch() string { return runtime.GOARCH }

// LookupArch returns the architecture called name.
func LookupArch(name string) (Arch, error) {
	for _, a := range arches {
		if a.Name == name {
			return a, nil
		}
	}
	return Arch{}, fmt.Errorf("unsupported architecture %q (the lab boots amd64 and arm64)", name)
}

// checkMachine rejects an executable built for another architecture.
func checkMachine(p string, want elf.Machine) error {
	f, err := elf.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%s is built for %s, the guest is %s", p, f.Machine, want)
	}
	return nil
}
