package params

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// The formatOptions parameter passes extra arguments to mkfs. mkfs runs as
// root on the node, so an argument that names a file or device (mke2fs -d
// DIR, -J device=, mkfs.xfs -p, -l logdev=, -r rtdev=, and relative paths
// like "-d etc") could read or write outside the volume, and some options
// make mkfs write nothing (-n, -N, -S). Only the options below reach mkfs,
// each with a value of the expected form; the controller checks them at
// CreateVolume and the node again before formatting.

// mkfsOption describes one option: whether it takes a value, and what the
// value may be (a pattern, or for key=value lists the keys and their values).
type mkfsOption struct {
	value *regexp.Regexp            // nil: a flag without a value
	keys  map[string]*regexp.Regexp // key=value,key=value suboptions
}

var (
	number   = regexp.MustCompile(`^[0-9]+[kmgKMG]?$`)
	decimal  = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	boolean  = regexp.MustCompile(`^[01]$`)
	label    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,12}$`)
	uuidLike = regexp.MustCompile(`^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|random|time|clear|generate|nil)$`)
	// ext4 features: names, optionally negated; journal_dev would turn the
	// volume into an external journal instead of a filesystem.
	ext4Features = regexp.MustCompile(`^(\^?(?:[a-z0-9_]+))(,\^?[a-z0-9_]+)*$`)
	usageTypes   = regexp.MustCompile(`^[a-z0-9_]+(,[a-z0-9_]+)*$`)
	errorsMode   = regexp.MustCompile(`^(continue|remount-ro|panic)$`)
	uidGid       = regexp.MustCompile(`^[0-9]+:[0-9]+$`)
)

var mkfsOptions = map[string]map[string]mkfsOption{
	"ext4": ext4Options,
	"ext3": ext4Options,
	"xfs": {
		"-b": {keys: map[string]*regexp.Regexp{"size": number}},
		"-m": {keys: map[string]*regexp.Regexp{"crc": boolean, "finobt": boolean, "reflink": boolean, "rmapbt": boolean,
			"bigtime": boolean, "inobtcount": boolean, "uuid": uuidLike}},
		"-i": {keys: map[string]*regexp.Regexp{"size": number, "maxpct": number, "align": boolean, "sparse": boolean,
			"perblock": number, "attr": boolean, "projid32bit": boolean, "nrext64": boolean}},
		"-n": {keys: map[string]*regexp.Regexp{"size": number, "version": regexp.MustCompile(`^(2|ci)$`), "ftype": boolean}},
		// The internal log only: logdev= would name another device.
		"-l": {keys: map[string]*regexp.Regexp{"size": number, "version": regexp.MustCompile(`^[12]$`), "sunit": number,
			"su": number, "lazy-count": boolean, "internal": regexp.MustCompile(`^1$`)}},
		"-s": {keys: map[string]*regexp.Regexp{"size": number}},
		"-L": {value: label},
		"-K": {},
		"-q": {},
	},
}

var ext4Options = map[string]mkfsOption{
	"-b": {value: regexp.MustCompile(`^(1024|2048|4096|65536)$`)},
	"-C": {value: number},
	"-e": {value: errorsMode},
	"-E": {keys: map[string]*regexp.Regexp{"stride": number, "stripe_width": number, "stripe-width": number,
		"lazy_itable_init": boolean, "lazy_journal_init": boolean, "packed_meta_blocks": boolean,
		"num_backup_sb": regexp.MustCompile(`^[012]$`), "root_owner": uidGid, "discard": nil, "nodiscard": nil}},
	"-g": {value: number},
	"-G": {value: number},
	"-i": {value: number},
	"-I": {value: number},
	"-j": {},
	// The internal journal's size only: device= would name another device.
	"-J": {keys: map[string]*regexp.Regexp{"size": number}},
	"-K": {},
	"-L": {value: label},
	"-m": {value: decimal},
	"-N": {value: number},
	"-O": {value: ext4Features},
	"-q": {},
	"-T": {value: usageTypes},
	"-U": {value: uuidLike},
}

// FormatOptions checks a formatOptions value for fsType ("" means ext4)
// and returns the arguments to pass to mkfs. The error names the option
// and what is allowed.
func FormatOptions(fsType, value string) ([]string, error) {
	if fsType == "" {
		fsType = "ext4"
	}
	allowed, ok := mkfsOptions[fsType]
	if !ok {
		return nil, fmt.Errorf("formatOptions: no mkfs options are known for filesystem %q", fsType)
	}
	args := strings.Fields(value)
	for i := 0; i < len(args); i++ {
		name := args[i]
		opt, ok := allowed[name]
		if !ok {
			return nil, fmt.Errorf("formatOptions: %q is not an allowed mkfs.%s option (allowed: %s)", name, fsType, optionNames(allowed))
		}
		if opt.value == nil && opt.keys == nil {
			continue
		}
		if i+1 >= len(args) {
			return nil, fmt.Errorf("formatOptions: mkfs.%s option %s needs a value", fsType, name)
		}
		i++
		if err := opt.check(args[i]); err != nil {
			return nil, fmt.Errorf("formatOptions: mkfs.%s %s %q: %v", fsType, name, args[i], err)
		}
		if name == "-O" && strings.Contains(args[i], "journal_dev") {
			return nil, fmt.Errorf("formatOptions: mkfs.%s -O journal_dev would make an external journal, not a filesystem", fsType)
		}
	}
	return args, nil
}

func (o mkfsOption) check(v string) error {
	if o.value != nil {
		if !o.value.MatchString(v) {
			return fmt.Errorf("not a valid value")
		}
		return nil
	}
	for _, kv := range strings.Split(v, ",") {
		k, val, hasValue := strings.Cut(kv, "=")
		pattern, ok := o.keys[k]
		switch {
		case !ok:
			return fmt.Errorf("suboption %q is not allowed (allowed: %s)", k, keyNames(o.keys))
		case pattern == nil && hasValue:
			return fmt.Errorf("suboption %q takes no value", k)
		case pattern != nil && (!hasValue || !pattern.MatchString(val)):
			return fmt.Errorf("suboption %q needs a valid value", k)
		}
	}
	return nil
}

func optionNames(m map[string]mkfsOption) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

func keyNames(m map[string]*regexp.Regexp) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}
