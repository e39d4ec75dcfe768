package controller

import "testing"

func TestParseParams(t *testing.T) {
	p, err := parseParams(map[string]string{"storageType": "zadara", "tags": "a, b,,", "csi.storage.k8s.io/pvc/name": "data"})
	if err != nil || p.storageType != "zadara" || len(p.tags) != 2 || p.pvcName != "data" {
		t.Fatalf("parseParams: %+v %v", p, err)
	}
	if _, err := parseParams(map[string]string{"storagetype": "dssd"}); err == nil {
		t.Fatal("a misspelt parameter was accepted")
	}
	if p, _ := parseParams(nil); p.storageType != defaultStorageType {
		t.Fatalf("default storage type %q", p.storageType)
	}
}

func TestParseParamsFSType(t *testing.T) {
	if _, err := parseParams(map[string]string{"csi.storage.k8s.io/fstype": "btrfs"}); err == nil {
		t.Fatal("an unsupported filesystem was accepted")
	}
	if p, err := parseParams(map[string]string{"csi.storage.k8s.io/fstype": "xfs"}); err != nil || p.fsType != "xfs" {
		t.Fatalf("xfs: %+v %v", p, err)
	}
}
