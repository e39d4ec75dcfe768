package cloudsim

import "net/http"

var jobFields = []string{"children", "created", "data", "last_modified", "operation", "resource_uri", "resources", "state", "uuid"}

// listJobs serves both lists: jobs have no short form.
func (a *api) listJobs(w http.ResponseWriter, r *http.Request) *apiError {
	return writeList(w, r, a.st.jobList(), true, listKind{fields: jobFields})
}

func (a *api) getJob(w http.ResponseWriter, r *http.Request) *apiError {
	obj, e := a.st.jobObject(r.PathValue("uuid"))
	if e != nil {
		return e
	}
	writeObject(w, r, http.StatusOK, obj)
	return nil
}
