package cloudsim

import (
	"slices"
	"time"
)

// putServer applies a full server definition (meta excepted: see
// applyServerPutLocked). The server stays busy for the server-update delay,
// and a second PUT meanwhile gets 503 concurrency. The body is validated
// after the delay, like every other part of the update, so a refused PUT
// still held the server and is still what LastServerPut reports.
func (st *store) putServer(id string, m map[string]any) (obj map[string]any, e *apiError) {
	v, e := st.beginServerUpdate(id, m)
	if e != nil {
		return nil, e
	}
	time.Sleep(st.delays.ServerUpdate) // unlocked: others see the server busy
	var posts []func()
	st.locked(func() { obj, posts, e = st.applyServerPutLocked(v, m) })
	runAll(posts) // guest devices are in place before the server is free again
	st.endServerUpdate(v)
	return obj, e
}

func (st *store) beginServerUpdate(id string, m map[string]any) (*server, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	v := st.servers[id]
	if v == nil {
		return nil, errNotExist("Server %s does not exist", id)
	}
	if v.updating() {
		return nil, errConcurrency("Server %s is being updated, try again later", id)
	}
	v.busy = true
	v.lastPut, _ = deepCopy(m).(map[string]any)
	return v, nil
}

func (st *store) endServerUpdate(v *server) {
	st.mu.Lock()
	defer st.mu.Unlock()
	v.busy = false
}

// applyServerPutLocked changes the server. On a running server only name,
// meta and tags change, plus hot-plug and unplug of virtio drives; other
// changes are silently ignored.
func (st *store) applyServerPutLocked(v *server, m map[string]any) (map[string]any, []func(), *apiError) {
	sp, e := parseServer(m)
	if e != nil {
		return nil, nil, e
	}
	// A PUT without meta keeps the server's meta: the manual's attach
	// example (11.6) sends no meta and its answer still carries the meta
	// set before. A meta that is sent replaces the whole map.
	if _, ok := m["meta"]; !ok {
		sp.fields["meta"] = deepCopy(v.fields["meta"])
	}
	if e := st.checkTagsLocked(sp.tags); e != nil {
		return nil, nil, e
	}
	live := v.guestLive()
	want := sp.drives
	switch {
	case live && st.hotplugOff:
		want = slices.Clone(v.drives) // accepted with 200, and ignored
	case live:
		// Hot-plug: virtio entries follow the request, an attached drive
		// keeps its channel, ide entries cannot change.
		want = nil
		for _, cur := range v.drives {
			if cur.device == "ide" {
				want = append(want, cur)
			}
		}
		for _, e := range sp.drives {
			if e.device != "virtio" {
				continue
			}
			if cur, ok := v.entry(e.drive); ok {
				if cur.device == "virtio" {
					want = append(want, cur)
				}
				continue
			}
			want = append(want, e)
		}
	}
	if e := st.validateDrivesLocked(v, want); e != nil {
		return nil, nil, e
	}
	if live {
		v.fields["name"], v.fields["meta"] = sp.fields["name"], sp.fields["meta"]
	} else {
		v.fields = sp.fields
	}
	v.tags = sp.tags
	posts := st.applyDrivesLocked(v, want)
	return st.renderServerLocked(v), posts, nil
}

// validateDrivesLocked checks the resulting drives list of a server against
// the account. Only drives new to the server must be attachable: an
// attached drive may stay while it is being cloned or deleted.
func (st *store) validateDrivesLocked(v *server, want []srvDrive) *apiError {
	channels := map[string]string{}
	for _, e := range want {
		key := e.device + " " + e.devChannel
		if other, dup := channels[key]; dup {
			return errValidation("drives", "dev_channel %s (%s) is given to drives %s and %s", e.devChannel, e.device, other, e.drive)
		}
		channels[key] = e.drive
		d := st.drives[e.drive]
		if d == nil {
			// A reference to a missing object is an invalid value in the
			// request: 400 validation (manual 2.12), not 404.
			return errValidation("drives", "Drive %s does not exist", e.drive)
		}
		if _, had := v.entry(e.drive); had {
			continue
		}
		if d.deleting {
			return errValidation("drives", "Drive %s does not exist", e.drive)
		}
		if d.op != "" {
			return errValidation("drives", "Drive %s is %s and cannot be attached", e.drive, d.op)
		}
		if d.media != "cdrom" && !d.allowMultimount {
			for _, sid := range d.mountedOn {
				if sid != v.uuid {
					return errValidation("drives", "Drive %s is already mounted on server %s", e.drive, sid)
				}
			}
		}
		for did, det := range v.detaching {
			if did != e.drive && det.device == e.device && det.devChannel == e.devChannel {
				return errConcurrency("dev_channel %s (%s) is still being released by drive %s", e.devChannel, e.device, did)
			}
		}
	}
	return nil
}

// applyDrivesLocked makes want the server's drives list: new drives are
// mounted at once (their guest devices appear before the answer unless a
// GuestAppear delay is set); removed ones are detached asynchronously. The
// returned work runs after the lock is released.
func (st *store) applyDrivesLocked(v *server, want []srvDrive) []func() {
	var posts []func()
	for _, cur := range v.drives {
		if !slices.ContainsFunc(want, func(e srvDrive) bool { return e.drive == cur.drive }) {
			posts = append(posts, st.scheduleDetachLocked(v, cur))
		}
	}
	for _, e := range want {
		if _, had := v.entry(e.drive); had {
			continue
		}
		_, leaving := v.detaching[e.drive]
		delete(v.detaching, e.drive)
		d := st.drives[e.drive]
		if !slices.Contains(d.mountedOn, v.uuid) {
			d.mountedOn = append(d.mountedOn, v.uuid)
		}
		if !st.hasGuest(v.uuid) {
			continue
		}
		id := e.drive
		if late := st.delays.GuestAppear; late > 0 && !leaving {
			v.appearAt[id] = time.Now().Add(late)
			st.afterLocked(late, func() { st.reconcileGuest(id) })
			continue
		}
		posts = append(posts, func() { st.reconcileGuest(id) })
	}
	v.drives = want
	return posts
}

// scheduleDetachLocked leaves a removed drive mounted (and its guest
// device in place) for the detach delay, like a hot-unplug that takes its
// time. A running QEMU guest unplugs it at once instead, and the detach
// ends when QEMU reports the device deleted: the returned work starts that
// unplug, in the background, as the API answers before the guest lets go.
func (st *store) scheduleDetachLocked(v *server, e srvDrive) func() {
	e.gen = st.nextSeqLocked()
	v.detaching[e.drive] = e
	sid, did, gen := v.uuid, e.drive, e.gen
	if st.vmOf(sid) != nil && v.guestLive() {
		return func() { go st.reconcileGuest(did) }
	}
	st.afterLocked(st.delays.Detach, func() {
		if st.endDetach(sid, did, gen) {
			st.reconcileGuest(did)
		}
	})
	return nil
}

// endDetach is the end of the detach delay: the drive is no longer mounted
// on the server, unless it was attached again meanwhile (gen tells). True
// if the drive left.
func (st *store) endDetach(sid, did string, gen int64) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	cur := st.servers[sid]
	if cur == nil {
		return false
	}
	if det, ok := cur.detaching[did]; !ok || det.gen != gen {
		return false
	}
	st.endDetachLocked(cur, did)
	return true
}

// endDetachLocked takes a detached drive off the server for good.
func (st *store) endDetachLocked(v *server, did string) {
	delete(v.detaching, did)
	delete(v.appearAt, did)
	if d := st.drives[did]; d != nil {
		d.mountedOn = slices.DeleteFunc(d.mountedOn, func(x string) bool { return x == v.uuid })
	}
}
