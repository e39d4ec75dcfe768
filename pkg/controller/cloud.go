package controller

import (
	"context"

	"github.com/cloudsigma-csi/driver/pkg/attach"
	"github.com/cloudsigma-csi/driver/pkg/cloudsigma"
)

// Drives is the drive half of the API.
type Drives interface {
	GetCapabilities(ctx context.Context) (*cloudsigma.Capabilities, error)
	ListDrives(ctx context.Context, f cloudsigma.Filter) ([]cloudsigma.Drive, error)
	ListDrivesPage(ctx context.Context, f cloudsigma.Filter, offset, limit int) (cloudsigma.Page[cloudsigma.Drive], error)
	GetDrive(ctx context.Context, uuid string) (*cloudsigma.Drive, error)
	CreateDrive(ctx context.Context, def cloudsigma.DriveCreate) (*cloudsigma.Drive, error)
	UpdateDrive(ctx context.Context, d *cloudsigma.Drive, u cloudsigma.DriveUpdate) (*cloudsigma.Drive, error)
	ResizeDrive(ctx context.Context, d *cloudsigma.Drive, size int64) (*cloudsigma.Drive, error)
	CloneDrive(ctx context.Context, uuid string, def cloudsigma.DriveClone) (*cloudsigma.Drive, error)
	DeleteDrive(ctx context.Context, uuid string) error
	WaitDrive(ctx context.Context, uuid string, opts cloudsigma.WaitOptions, want ...string) (*cloudsigma.Drive, error)
	ListTags(ctx context.Context, f cloudsigma.Filter) ([]cloudsigma.Tag, error)
	CreateTag(ctx context.Context, name string) (*cloudsigma.Tag, error)
}

// Snapshots is the snapshot half of the API.
type Snapshots interface {
	GetSnapshot(ctx context.Context, uuid string) (*cloudsigma.Snapshot, error)
	ListSnapshots(ctx context.Context, f cloudsigma.Filter) ([]cloudsigma.Snapshot, error)
	ListSnapshotsPage(ctx context.Context, f cloudsigma.Filter, offset, limit int) (cloudsigma.Page[cloudsigma.Snapshot], error)
	CreateSnapshot(ctx context.Context, def cloudsigma.SnapshotCreate) (*cloudsigma.Snapshot, error)
	CloneSnapshot(ctx context.Context, uuid string, def cloudsigma.DriveClone) (*cloudsigma.Drive, error)
	DeleteSnapshot(ctx context.Context, uuid string) error
	WaitSnapshot(ctx context.Context, uuid string, opts cloudsigma.WaitOptions, want ...string) (*cloudsigma.Snapshot, error)
}

// Cloud is everything the controller needs.
type Cloud interface {
	Drives
	Snapshots
	attach.ServerAPI
}

var _ Cloud = (*cloudsigma.Client)(nil)
