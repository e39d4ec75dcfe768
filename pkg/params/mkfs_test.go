package params

import (
	"slices"
	"strings"
	"testing"
)

func TestFormatOptionsAllowed(t *testing.T) {
	for _, tc := range []struct{ fs, in string }{
		{"", "-b 4096 -m 0.5 -L data"},
		{"ext4", "-E lazy_itable_init=0,lazy_journal_init=0,nodiscard -O ^has_journal,metadata_csum -J size=64"},
		{"ext3", "-j -i 16384 -T largefile"},
		{"xfs", "-m crc=1,reflink=1 -i size=512 -n ftype=1 -l size=64m,lazy-count=1 -K -L vol1"},
		{"xfs", ""},
	} {
		got, err := FormatOptions(tc.fs, tc.in)
		if err != nil {
			t.Errorf("FormatOptions(%q, %q): %v", tc.fs, tc.in, err)
			continue
		}
		if !slices.Equal(got, strings.Fields(tc.in)) {
			t.Errorf("FormatOptions(%q, %q) = %q", tc.fs, tc.in, got)
		}
	}
}

// Nothing that names a file or device, and nothing that makes mkfs write
// something other than the filesystem, reaches mkfs; relative paths neither.
func TestFormatOptionsRefused(t *testing.T) {
	for _, tc := range []struct{ fs, in, says string }{
		{"ext4", "-d etc", `"-d" is not an allowed mkfs.ext4 option`},
		{"ext4", "-d /etc", `"-d"`},
		{"ext4", "-J device=/dev/sdb", `suboption "device"`},
		{"ext4", "-J device=dev/loop0", `suboption "device"`},
		{"ext4", "-l badblocks.txt", `"-l"`},
		{"ext4", "-S", `"-S"`},
		{"ext4", "-n", `"-n"`},
		{"ext4", "-O journal_dev", "external journal"},
		{"ext4", "-b 3000", "not a valid value"},
		{"ext4", "-b", "needs a value"},
		{"ext4", "-L ../../x", "not a valid value"},
		{"ext4", "-E root_owner=0:0,offset=4096", `suboption "offset"`},
		{"xfs", "-d agcount=4", `"-d" is not an allowed mkfs.xfs option`},
		{"xfs", "-p protofile", `"-p"`},
		{"xfs", "-l logdev=dev/loop0", `suboption "logdev"`},
		{"xfs", "-l logdev=/dev/sdb,size=10m", `suboption "logdev"`},
		{"xfs", "-r rtdev=/dev/sdc", `"-r"`},
		{"xfs", "-N", `"-N"`},
		{"xfs", "-m crc=yes", `suboption "crc" needs a valid value`},
		{"xfs", "/dev/sda", `"/dev/sda"`},
		{"btrfs", "-b 4096", "no mkfs options are known"},
	} {
		_, err := FormatOptions(tc.fs, tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("FormatOptions(%q, %q) = %v; want an error saying %s", tc.fs, tc.in, err, tc.says)
		}
	}
}
