# The CloudSigma CSI driver. `make demo` runs the whole driver on one machine
# against the embedded simulator; `make test` runs every test (as root: node
# tests use real loop devices, mkfs and mounts). Without root: `make lint`
# (gofmt, go vet, staticcheck) and `make unit` (the short tests).
SHELL := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/cloudsigma-csi/driver/pkg/driver.version=$(VERSION)
GOBIN := $(shell go env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

.PHONY: all build demo tools test check lint unit sanity-cli e2e e2e-guest fuzz bench clean

all: build

build:
	CGO_ENABLED=0 go build -ldflags "$(LDFLAGS)" -o bin/cloudsigma-csi-driver ./cmd/cloudsigma-csi-driver
	CGO_ENABLED=0 go build -o bin/cloudsigma-sim ./cmd/cloudsigma-sim

# The driver's main job, end to end, on the embedded simulator (root).
FS ?= ext4
demo: build
	go run ./hack/demo --sim bin/cloudsigma-sim --driver bin/cloudsigma-csi-driver --fs $(FS)

# gofmt and go vet fail the build.
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

# check, then staticcheck, over the main module, the tests/e2e module and
# tests/guest (their build tags on). No root: staticcheck is the version pinned in
# hack/install-tools.sh, which installs it into `go env GOPATH`/bin when missing
# and otherwise only compares versions.
lint: check
	hack/install-tools.sh staticcheck govulncheck
	staticcheck ./...
	hack/vulncheck.sh
	cd tests/e2e && go vet -tags e2e . && staticcheck -tags e2e .
	go vet -tags guest ./tests/guest && staticcheck -tags guest ./tests/guest

# The short tests of pkg and cmd: no root, no installs, under a minute warm.
# -short skips the tests that need root (loop devices, mkfs, mount).
unit:
	go test -short -count=1 ./pkg/... ./cmd/...

# What the tests and lint need (OS packages, pinned helm, kustomize,
# csi-sanity, staticcheck); idempotent, and quick once everything is there.
tools:
	@if [ "$$(id -u)" != 0 ]; then echo "make tools needs root: it installs OS packages"; exit 1; fi
	hack/install-tools.sh

# Every test, as CI runs it. Root is required, not optional.
test: tools check
	@if [ "$$(id -u)" != 0 ]; then echo "make test needs root: node tests use loop devices, mkfs and mount"; exit 1; fi
	@log=$${TEST_LOG:-/tmp/cloudsigma-csi-test.log}; \
	go test -count=1 -v -timeout 40m ./... >"$$log" 2>&1; rc=$$?; \
	if [ $$rc != 0 ]; then echo "=== failures (full log: $$log) ==="; grep -B2 -A30 -E -- '--- FAIL|^panic:|\[FAIL\]' "$$log" | head -400; fi; \
	echo "=== chaos soak (tests/soak) ==="; grep -E -- '^soak: ' "$$log"; \
	echo "=== summary ==="; grep -E -- '^(ok|FAIL|panic:)|--- (FAIL|SKIP)' "$$log"; \
	echo "tests: $$(grep -cE -- '--- PASS' "$$log") passed, $$(grep -cE -- '--- FAIL' "$$log") failed, $$(grep -cE -- '--- SKIP' "$$log") skipped"; \
	exit $$rc

# The csi-sanity command-line tool against the built binaries, from outside
# (root: node tests on loop devices). SANITY=controller for the controller only;
# SERIALS=other or none: a guest whose disks show no UUID serial (docs/identity.md).
SANITY ?= full
sanity-cli: build
	hack/sanity-cli.sh $(SANITY)

# The driver under a real control plane (etcd, kube-apiserver,
# kube-controller-manager) with the CSI sidecars, as root: tests/e2e/README.md.
# The first run on a machine builds the Kubernetes binaries (cached after).
e2e: build
	@if [ "$$(id -u)" != 0 ]; then echo "make e2e needs root: loop devices, mkfs and mount"; exit 1; fi
	hack/e2e-binaries.sh bin/e2e
	cd tests/e2e && go vet -tags e2e . && \
		go test -tags e2e -count=1 -v -timeout 30m . -args -bin-dir ../../bin/e2e \
		-driver ../../bin/cloudsigma-csi-driver -sim ../../bin/cloudsigma-sim

# The node plugin on a real Linux kernel: the simulator's local server is a
# QEMU guest booted from hack/guest-image.sh's image (cached in
# /var/cache/cloudsigma-csi-guest, so root). The whole suite (csi-sanity with
# the controller on the host and the node plugin in the guest, the scenarios,
# the identity stress) runs with disks that show the UUID serial; csi-sanity
# then runs again, a process each (ginkgo runs one suite per process), with
# disks that show another serial and none (docs/identity.md). Figures are
# printed at the end; where QEMU cannot start, it fails with the reason.
# GUEST_ACCEL=kvm|tcg forces the accelerator.
GUEST_ACCEL ?= auto
GUEST_TEST = go test -tags guest -count=1 -v -timeout 30m ./tests/guest/
e2e-guest: build
	@if [ "$$(id -u)" != 0 ]; then echo "make e2e-guest needs root: the guest image is cached in /var/cache/cloudsigma-csi-guest"; exit 1; fi
	hack/guest-image.sh bin/guest bin/cloudsigma-csi-driver
	@log=$${GUEST_LOG:-/tmp/cloudsigma-csi-e2e-guest.log}; start=$$(date +%s); rc=0; : >"$$log"; \
	for args in "-args" "-run ^TestSanity$$ -args -sanity-serial=other" "-run ^TestSanity$$ -args -sanity-serial=none"; do \
		echo "=== $(GUEST_TEST) $$args -image ... -accel $(GUEST_ACCEL)" >>"$$log"; \
		$(GUEST_TEST) $$args -image "$(CURDIR)/bin/guest" -accel $(GUEST_ACCEL) >>"$$log" 2>&1 || rc=1; \
	done; \
	sed 's/\x1b\[[0-9;]*m//g' "$$log" | grep -E -- '^(Ran |SUCCESS!|FAIL!)|^--- (PASS|FAIL)|^\s+--- FAIL|\[FAIL\]'; \
	echo "=== guest figures ==="; sed -n '/^=== guest figures ===/,/^[^ =]/p' "$$log" | grep '^  '; \
	if [ $$rc != 0 ]; then echo "=== failures (full log: $$log) ==="; \
		grep -B2 -A30 -E -- '--- FAIL|^panic:|\[FAIL\]' "$$log" | head -300; fi; \
	echo "e2e-guest: exit $$rc in $$(( $$(date +%s) - start ))s (full log: $$log)"; exit $$rc

fuzz:
	for f in FuzzDecodeError FuzzDecodeDrive FuzzDecodeServer FuzzRef; do \
		go test -run='^$$' -fuzz="^$$f$$" -fuzztime=20s ./pkg/cloudsigma/ || exit 1; done

# The performance figures (tests/bench, as root for NodeStageVolume): the
# real driver over gRPC, the simulator over HTTP with a per-call latency, each
# figure against a baseline from the same run, as a table for the README.
# make test runs the same suite with small sizes.
bench:
	@if [ "$$(id -u)" != 0 ]; then echo "make bench needs root: NodeStageVolume formats and mounts loop devices"; exit 1; fi
	@log=$${BENCH_LOG:-/tmp/cloudsigma-csi-bench.log}; \
	BENCH_FULL=1 go test -count=1 -v -timeout 20m ./tests/bench/ >"$$log" 2>&1; rc=$$?; \
	grep -E '^(=== bench:|\|)' "$$log"; \
	if [ $$rc != 0 ]; then echo "=== failures (full log: $$log) ==="; grep -B2 -A20 -E -- '--- FAIL|^panic:' "$$log" | head -100; fi; \
	exit $$rc

clean:
	rm -rf bin
