// Package virtio holds the two facts about CloudSigma's virtio devices that
// both sides of the driver share: the device channels ("controller:unit") a
// server's drives occupy, and the serial under which the guest is expected to
// see a drive; and, for the single-machine emulation, the marker by which the
// simulator declares a directory of such links its emulated guest
// (guest.go). It is a leaf: the controller's attach queue, the node's device
// finder and the simulator all import it, and it imports none of them.
package virtio
