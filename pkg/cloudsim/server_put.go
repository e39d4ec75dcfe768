package cloudsim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Device channel limits (manual 11.7.1): virtio has 6 units per controller
// and 1024 drives in all; ide has 0:0, 0:1, 1:0 and 1:1.
const (
	virtioUnits      = 6
	virtioMaxDrives  = 1024
	virtioMaxControl = (virtioMaxDrives+virtioUnits-1)/virtioUnits - 1 // 170
)

// parseServerDrives checks the drives list of a definition on its own:
// channel syntax and limits, and no channel or drive used twice.
func parseServerDrives(m map[string]any) ([]srvDrive, *apiError) {
	list, e := getList(m, "drives")
	if e != nil {
		return nil, e
	}
	out := make([]srvDrive, 0, len(list))
	channels := map[string]string{}
	seen := map[string]bool{}
	virtio := 0
	for _, item := range list {
		em, ok := item.(map[string]any)
		if !ok {
			return nil, errValidation("drives", "Each drive entry must be an object")
		}
		id, ok := refUUID(em["drive"])
		if !ok {
			return nil, errValidation("drives", "Drive entry without a drive")
		}
		device, _ := em["device"].(string)
		ch, _ := em["dev_channel"].(string)
		ctrl, unit, ok := parseChannel(ch)
		if !ok {
			return nil, errValidation("drives", "Invalid dev_channel %q: expected controller:unit", ch)
		}
		switch device {
		case "virtio":
			if unit >= virtioUnits || ctrl > virtioMaxControl {
				return nil, errValidation("drives", "Invalid virtio dev_channel %s: units are 0-%d, controllers 0-%d", ch, virtioUnits-1, virtioMaxControl)
			}
			virtio++
		case "ide":
			if ctrl > 1 || unit > 1 {
				return nil, errValidation("drives", "Invalid ide dev_channel %s: use 0:0, 0:1, 1:0 or 1:1", ch)
			}
		default:
			return nil, errValidation("drives", "Invalid device %q: use virtio or ide", device)
		}
		ch = fmt.Sprintf("%d:%d", ctrl, unit)
		key := device + " " + ch
		if other, dup := channels[key]; dup {
			return nil, errValidation("drives", "dev_channel %s (%s) is given to drives %s and %s", ch, device, other, id)
		}
		channels[key] = id
		if seen[id] {
			return nil, errValidation("drives", "Drive %s is attached twice", id)
		}
		seen[id] = true
		var boot any
		if b, present := em["boot_order"]; present && b != nil {
			if _, _, e := getInt64(em, "boot_order"); e != nil {
				return nil, errValidation("drives", "boot_order must be an integer or null")
			}
			boot = b
		}
		out = append(out, srvDrive{drive: id, devChannel: ch, device: device, bootOrder: boot})
	}
	if virtio > virtioMaxDrives {
		return nil, errValidation("drives", "At most %d virtio drives", virtioMaxDrives)
	}
	return out, nil
}

func parseChannel(ch string) (int, int, bool) {
	c, u, ok := strings.Cut(ch, ":")
	if !ok {
		return 0, 0, false
	}
	ctrl, err1 := strconv.Atoi(c)
	unit, err2 := strconv.Atoi(u)
	if err1 != nil || err2 != nil || ctrl < 0 || unit < 0 || strings.HasPrefix(c, "+") || strings.HasPrefix(u, "+") {
		return 0, 0, false
	}
	return ctrl, unit, true
}

// validateDrives checks the resulting drives list of a server against the
// account. Only drives new to the server must be attachable: an attached
// drive may stay while it is being cloned or deleted. Caller holds s.mu.
func (s *Sim) validateDrives(v *server, want []srvDrive) *apiError {
	channels := map[string]string{}
	for _, e := range want {
		key := e.device + " " + e.devChannel
		if other, dup := channels[key]; dup {
			return errValidation("drives", "dev_channel %s (%s) is given to drives %s and %s", e.devChannel, e.device, other, e.drive)
		}
		channels[key] = e.drive
		d := s.drives[e.drive]
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

// applyDrives makes want the server's drives list: new drives are mounted
// at once (their guest devices appear before the answer unless a
// GuestAppear delay is set); removed ones are detached asynchronously.
// Caller holds s.mu; the returned work runs after it is released.
func (s *Sim) applyDrives(v *server, want []srvDrive) []func() {
	for _, cur := range v.drives {
		if !slices.ContainsFunc(want, func(e srvDrive) bool { return e.drive == cur.drive }) {
			s.scheduleDetach(v, cur)
		}
	}
	var posts []func()
	for _, e := range want {
		if _, had := v.entry(e.drive); had {
			continue
		}
		_, leaving := v.detaching[e.drive]
		delete(v.detaching, e.drive)
		d := s.drives[e.drive]
		if !slices.Contains(d.mountedOn, v.uuid) {
			d.mountedOn = append(d.mountedOn, v.uuid)
		}
		if s.guest == nil || v.uuid != s.cfg.LocalServer {
			continue
		}
		id := e.drive
		if late := s.cfg.Delays.GuestAppear; late > 0 && !leaving {
			v.appearAt[id] = time.Now().Add(late)
			s.after(late, func() func() { return func() { s.reconcileGuest(id) } })
			continue
		}
		posts = append(posts, func() { s.reconcileGuest(id) })
	}
	v.drives = want
	return posts
}

// scheduleDetach leaves a removed drive mounted (and its guest device in
// place) for the detach delay, like a hot-unplug that takes its time.
// Caller holds s.mu.
func (s *Sim) scheduleDetach(v *server, e srvDrive) {
	e.gen = s.nextSeq()
	v.detaching[e.drive] = e
	sid, did, gen := v.uuid, e.drive, e.gen
	s.after(s.cfg.Delays.Detach, func() func() {
		cur := s.servers[sid]
		if cur == nil {
			return nil
		}
		if det, ok := cur.detaching[did]; !ok || det.gen != gen {
			return nil
		}
		delete(cur.detaching, did)
		delete(cur.appearAt, did)
		if d := s.drives[did]; d != nil {
			d.mountedOn = slices.DeleteFunc(d.mountedOn, func(x string) bool { return x == sid })
		}
		if s.guest == nil {
			return nil
		}
		return func() { s.reconcileGuest(did) }
	})
}

// putServer applies a full server definition (meta excepted: see
// applyServerPut). The server stays busy for the
// server-update delay, and a second PUT meanwhile gets 503 concurrency. On
// a running server only name, meta and tags change, plus hot-plug and
// unplug of virtio drives; other changes are silently ignored.
func (s *Sim) putServer(w http.ResponseWriter, r *http.Request, id string) *apiError {
	m, e := decodeObject(r)
	if e != nil {
		return e
	}
	s.mu.Lock()
	v := s.servers[id]
	if v == nil {
		s.mu.Unlock()
		return errNotExist("Server %s does not exist", id)
	}
	if v.busy || v.status == srvStarting || v.status == srvStopping {
		s.mu.Unlock()
		return errConcurrency("Server %s is being updated, try again later", id)
	}
	v.busy = true
	v.lastPut, _ = deepCopy(m).(map[string]any)
	s.mu.Unlock()

	time.Sleep(s.cfg.Delays.ServerUpdate)

	s.mu.Lock()
	obj, posts, e := s.applyServerPut(v, m)
	s.mu.Unlock()
	runAll(posts)
	s.mu.Lock()
	v.busy = false
	s.mu.Unlock()
	if e != nil {
		return e
	}
	writeObject(w, r, http.StatusOK, obj)
	return nil
}

func (s *Sim) applyServerPut(v *server, m map[string]any) (map[string]any, []func(), *apiError) {
	fields, tags, entries, e := parseServer(m)
	if e != nil {
		return nil, nil, e
	}
	// A PUT without meta keeps the server's meta: the manual's attach
	// example (11.6) sends no meta and its answer still carries the meta
	// set before. A meta that is sent replaces the whole map.
	if _, ok := m["meta"]; !ok {
		fields["meta"] = deepCopy(v.fields["meta"])
	}
	if e := s.checkTags(tags); e != nil {
		return nil, nil, e
	}
	live := v.guestLive()
	want := entries
	if live {
		// Hot-plug: virtio entries follow the request, an attached drive
		// keeps its channel, ide entries cannot change.
		want = nil
		for _, cur := range v.drives {
			if cur.device == "ide" {
				want = append(want, cur)
			}
		}
		for _, e := range entries {
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
	if e := s.validateDrives(v, want); e != nil {
		return nil, nil, e
	}
	if live {
		v.fields["name"], v.fields["meta"] = fields["name"], fields["meta"]
	} else {
		v.fields = fields
	}
	v.tags = tags
	posts := s.applyDrives(v, want)
	return s.renderServer(v), posts, nil
}
