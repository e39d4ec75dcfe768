package params

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
)

// Content evidence (docs/identity.md): the controller reads the first
// ContentProbeBytes of a drive through the API before attaching it and puts
// their digest in publish_context under PublishContentDigest; a node whose
// guest shows no usable serial reads the same bytes on each candidate device.
// 64 KiB holds every superblock and partition table the driver cares about
// (MBR, GPT header and entries, ext2/3/4 at 1 KiB, xfs at 0), so a formatted
// drive's digest carries its file system's UUID.
const (
	PublishContentDigest = "contentDigest"
	ContentProbeBytes    = 64 << 10
)

// ContentDigest is the publish_context form of the probed bytes:
// "sha256:<hex>". Bytes short of ContentProbeBytes (a drive smaller than
// the probe, which CloudSigma's minimum size rules out) are hashed as read.
func ContentDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

var blank = sync.OnceValue(func() string { return ContentDigest(make([]byte, ContentProbeBytes)) })

// BlankDigest is the digest of a drive whose probed range is all zeros: a
// new drive, which content alone cannot tell from another new drive.
func BlankDigest() string { return blank() }
