package cloudsim

import (
	"time"

	"github.com/google/uuid"
)

// jobTime is the timestamp format of job objects (ISO 8601 with "T").
const jobTime = "2006-01-02T15:04:05.000000-07:00"

type job struct {
	seq          int64
	uuid         string
	operation    string
	resources    []string // resource URIs
	created      time.Time
	lastModified time.Time
	duration     time.Duration
	state        string // started, success, failed
}

// newJobLocked registers a background job.
func (st *store) newJobLocked(op string, resources []string, d time.Duration) *job {
	now := time.Now().UTC()
	j := &job{
		seq: st.nextSeqLocked(), uuid: uuid.NewString(), operation: op, resources: resources,
		created: now, lastModified: now, duration: d, state: "started",
	}
	st.jobs[j.uuid] = j
	return j
}

// finish ends a job. Caller holds st.mu (jobs are part of the state).
func (j *job) finish(state string) {
	j.state, j.lastModified = state, time.Now().UTC()
}

// progress grows with elapsed time while started; 100 once done.
func (j *job) progress() int {
	if j.state != "started" {
		return 100
	}
	if j.duration <= 0 {
		return 99
	}
	p := int(time.Since(j.created) * 100 / j.duration)
	return min(max(p, 0), 99)
}

func (j *job) render() map[string]any {
	res := make([]any, len(j.resources))
	for i, r := range j.resources {
		res[i] = r
	}
	return map[string]any{
		"children":      []any{},
		"created":       j.created.Format(jobTime),
		"data":          map[string]any{"progress": j.progress()},
		"last_modified": j.lastModified.Format(jobTime),
		"operation":     j.operation,
		"resource_uri":  uri("jobs", j.uuid),
		"resources":     res,
		"state":         j.state,
		"uuid":          j.uuid,
	}
}

// jobList renders every job for the list endpoints.
func (st *store) jobList() []listItem {
	st.mu.Lock()
	defer st.mu.Unlock()
	items := make([]listItem, 0, len(st.jobs))
	for _, j := range st.jobs {
		items = append(items, listItem{seq: j.seq, uuid: j.uuid, detail: j.render()})
	}
	return items
}

func (st *store) jobObject(id string) (map[string]any, *apiError) {
	st.mu.Lock()
	defer st.mu.Unlock()
	j := st.jobs[id]
	if j == nil {
		return nil, errNotExist("Job %s does not exist", id)
	}
	return j.render(), nil
}
