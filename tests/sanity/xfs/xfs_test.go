package xfs_test

import (
	"testing"

	"github.com/cloudsigma-csi/driver/tests/sanity/sanitytest"
)

// TestSanityXFS runs every csi-sanity test with xfs volumes on loop devices.
func TestSanityXFS(t *testing.T) { sanitytest.Run(t, "xfs") }
