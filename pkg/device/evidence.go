package device

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/klog/v2"

	"github.com/cloudsigma-csi/driver/pkg/params"
	"github.com/cloudsigma-csi/driver/pkg/servercontext"
)

// Evidence is what the controller tells the node about a drive besides its
// UUID (publish_context): its size when attached and the digest of its
// first params.ContentProbeBytes, read through the API before the attach.
type Evidence struct {
	Size   int64
	Digest string // params.ContentDigest form; "" when the controller sent none
}

// EvidenceFinder is a Finder that also takes the content evidence.
type EvidenceFinder interface {
	Finder
	FindEvidence(ctx context.Context, driveUUID string, ev Evidence) (string, error)
}

// candidate is one device of the drive's size, and why it is not the drive.
type candidate struct {
	name, excluded string
}

// findByEvidence is one look in a guest whose serials name no drive
// (docs/identity.md). The drive is the one device that satisfies all of:
// its server context lists the drive; every drive of that size the context
// lists, less those already identified, has exactly one device of that
// size, not already identified, and no device more; the device is not in
// use (an exclusive open succeeds); its first bytes have the digest the
// controller read through the API, or hold the file system this node found
// on the drive before (records.go). Every other device of that size must be
// excluded by one of those; anything else is an error, never a choice.
func (f *VirtioFinder) findByEvidence(ctx context.Context, driveUUID string, ev Evidence) (string, error) {
	if dev := f.recalled(driveUUID); dev != "" {
		return f.devPath(dev), nil
	}
	switch {
	case ev.Digest == "":
		return "", fmt.Errorf("%w: this guest's disks show no serial naming drive %s, and publish_context carries no %s to identify it by: "+
			"run the controller with --drive-identity=auto (the default)", ErrIdentity, driveUUID, params.PublishContentDigest)
	case ev.Size <= 0:
		return "", fmt.Errorf("%w: publish_context carries no drive size for %s", ErrIdentity, driveUUID)
	case f.Context == nil:
		return "", fmt.Errorf("%w: identifying drive %s without a serial needs the server context, which this node cannot read", ErrIdentity, driveUUID)
	}
	f.evidenceMu.Lock() // one identification at a time: two never claim one device
	defer f.evidenceMu.Unlock()

	before, err := f.readContext(ctx)
	if err != nil {
		return "", fmt.Errorf("%w: reading the server context: %v", ErrNotFound, err)
	}
	known := f.recalledAll() // device name -> drive UUID already identified
	// The context's size is the drive's current one: a drive resized
	// (offline) since its publish is still attached with the old size in
	// publish_context. Drives only grow.
	for _, d := range before.Drives {
		if strings.EqualFold(d.DriveUUID, driveUUID) && d.Size > ev.Size {
			ev.Size = d.Size
		}
	}
	want, listed := sameSize(before, ev.Size, known)
	if !listed[strings.ToLower(driveUUID)] {
		return "", fmt.Errorf("%w: the server context does not list drive %s among this server's drives yet", ErrNotFound, driveUUID)
	}
	names, err := f.disks()
	if err != nil {
		return "", fmt.Errorf("scanning block devices: %w", err)
	}
	var cands []candidate
	for _, name := range names {
		if _, ok := known[name]; ok {
			continue // identified as another drive (or this one's old instance: recalled failed)
		}
		if size, err := f.sysSize(name); err != nil || size != ev.Size {
			continue
		}
		cands = append(cands, candidate{name: name})
	}
	if len(cands) < want {
		return "", fmt.Errorf("%w: the server context lists %d drives of %d bytes not yet identified here, %d devices of that size are visible: waiting for the rest",
			ErrNotFound, want, ev.Size, len(cands))
	}
	if len(cands) > want {
		return "", fmt.Errorf("%w: %d devices of %d bytes (%s) but the server context lists %d such drives: a device is coming or going, or belongs to no drive of this server",
			ErrIdentity, len(cands), ev.Size, nameList(cands), want)
	}
	// The file system stage found on this drive before (a reboot since,
	// and publish_context older than that file system): evidence too.
	mem, _ := f.load(driveUUID)
	var match []string
	for i := range cands {
		c := &cands[i]
		head, err := f.head(c.name)
		switch {
		case err != nil:
			c.excluded = err.Error()
		case params.ContentDigest(head) == ev.Digest:
			match = append(match, c.name)
		case mem.FS != "" && fsID(head) == mem.FS:
			match = append(match, c.name)
		default:
			c.excluded = "other content"
		}
	}
	if len(match) == 1 {
		after, err := f.readContext(ctx)
		if err != nil {
			return "", fmt.Errorf("%w: reading the server context again: %v", ErrNotFound, err)
		}
		if !sameDrives(before, after) {
			return "", fmt.Errorf("%w: this server's drives changed while drive %s was being identified", ErrIdentity, driveUUID)
		}
		r, err := f.instance(match[0])
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrIdentity, err)
		}
		r.FS = mem.FS // Note replaces it once stage has mounted the device
		if err := f.remember(driveUUID, r); err != nil {
			return "", fmt.Errorf("recording the identity of drive %s: %w", driveUUID, err)
		}
		klog.InfoS("Drive identified by evidence", "drive", driveUUID, "device", f.devPath(match[0]), "diskseq", r.Diskseq,
			"size", ev.Size, "sameSizeDevices", len(cands), "blank", ev.Digest == params.BlankDigest())
		return f.devPath(match[0]), nil
	}
	what := "its content"
	if ev.Digest == params.BlankDigest() {
		what = "nothing (blank)"
	}
	if len(match) == 0 {
		return "", fmt.Errorf("%w: no device of %d bytes holds what the API shows drive %s holds (%s): %s",
			ErrIdentity, ev.Size, driveUUID, what, explain(cands))
	}
	return "", fmt.Errorf("%w: devices %s all hold what drive %s holds (%s) and are %d bytes: refusing to choose. "+
		"The controller never attaches two such drives to one server at once, so one was attached by other means or the controller restarted mid-attach: "+
		"detach the drive that is not %s, or give it content, and the stage is retried",
		ErrAmbiguous, strings.Join(match, ", "), driveUUID, what, ev.Size, driveUUID)
}

// sameSize counts the drives of size the context lists that no record
// names yet, and the set of every drive it lists. A drive listed without
// its definition counts as that size: unknown must not shrink the count.
func sameSize(sc *servercontext.Context, size int64, known map[string]string) (int, map[string]bool) {
	identified := map[string]bool{}
	for _, id := range known {
		identified[id] = true
	}
	n, listed := 0, map[string]bool{}
	for _, d := range sc.Drives {
		listed[d.DriveUUID] = true
		if d.Device != "ide" && (d.Size == size || d.Size == 0) && !identified[d.DriveUUID] {
			n++
		}
	}
	return n, listed
}

func sameDrives(a, b *servercontext.Context) bool {
	key := func(sc *servercontext.Context) []string {
		var out []string
		for _, d := range sc.Drives {
			out = append(out, fmt.Sprintf("%s@%s=%d", d.DriveUUID, d.DevChannel, d.Size))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

func nameList(cs []candidate) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.name)
	}
	return strings.Join(out, ", ")
}

func explain(cs []candidate) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.name+": "+c.excluded)
	}
	if len(out) == 0 {
		return "no candidate"
	}
	return strings.Join(out, "; ")
}
