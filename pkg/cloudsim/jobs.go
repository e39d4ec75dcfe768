package cloudsim

import (
	"net/http"
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

// newJob registers a background job. Caller holds s.mu.
func (s *Sim) newJob(op string, resources []string, d time.Duration) *job {
	now := time.Now().UTC()
	j := &job{
		seq: s.nextSeq(), uuid: uuid.NewString(), operation: op, resources: resources,
		created: now, lastModified: now, duration: d, state: "started",
	}
	s.jobs[j.uuid] = j
	return j
}

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

var jobFields = []string{"children", "created", "data", "last_modified", "operation", "resource_uri", "resources", "state", "uuid"}

func (s *Sim) routeJobs(w http.ResponseWriter, r *http.Request, p []string) *apiError {
	if r.Method != http.MethodGet {
		return errMethod(r.Method, "GET")
	}
	if len(p) == 0 || (len(p) == 1 && p[0] == "detail") {
		s.mu.Lock()
		items := make([]listItem, 0, len(s.jobs))
		for _, j := range s.jobs {
			items = append(items, listItem{seq: j.seq, uuid: j.uuid, detail: j.render()})
		}
		s.mu.Unlock()
		return writeList(w, r, items, true, listKind{fields: jobFields})
	}
	if len(p) == 1 {
		s.mu.Lock()
		j := s.jobs[p[0]]
		var obj map[string]any
		if j != nil {
			obj = j.render()
		}
		s.mu.Unlock()
		if j == nil {
			return errNotExist("Job %s does not exist", p[0])
		}
		writeObject(w, r, http.StatusOK, obj)
		return nil
	}
	return errNotExist("No resource at %s", r.URL.Path)
}
