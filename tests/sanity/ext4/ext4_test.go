package ext4_test

import (
	"testing"

	"github.com/cloudsigma-csi/driver/tests/sanity/sanitytest"
)

// TestSanityEXT4 runs every csi-sanity test with ext4 volumes on loop devices.
func TestSanityEXT4(t *testing.T) { sanitytest.Run(t, "ext4") }
