package cloudsigma

import (
	"encoding/json"
	"testing"
)

// The API does not enforce string meta values; a drive whose meta another
// tool wrote with a number, a boolean, null or an object still decodes.
func TestMetaValuesThatAreNotStrings(t *testing.T) {
	body := `{"uuid":"5b4a69a3-8e78-4c45-a8ba-8b13f0895e23","name":"d","status":"unmounted","size":1,
		"meta":{"csi_cluster":"a","count":5,"ok":true,"none":null,"obj":{"x":[1,2]}}}`
	var d Drive
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("decoding a drive with non-string meta: %v", err)
	}
	want := map[string]string{"csi_cluster": "a", "count": "5", "ok": "true", "none": "", "obj": `{"x":[1,2]}`}
	for k, v := range want {
		if d.Meta[k] != v {
			t.Errorf("meta %s = %q, want %q", k, d.Meta[k], v)
		}
	}
	for _, v := range []any{&Snapshot{}, &Server{}} {
		if err := json.Unmarshal([]byte(`{"uuid":"5b4a69a3-8e78-4c45-a8ba-8b13f0895e23","meta":{"n":1.5}}`), v); err != nil {
			t.Errorf("decoding %T with non-string meta: %v", v, err)
		}
	}
}
