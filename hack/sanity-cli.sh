#!/usr/bin/env bash
# Runs the csi-sanity command-line tool against the built binaries, the way a
# reviewer checks the driver from outside: bin/cloudsigma-sim and
# bin/cloudsigma-csi-driver --mode all, over real HTTP and a real unix socket.
#
#   hack/sanity-cli.sh controller   # Identity + Controller suites
#   hack/sanity-cli.sh full         # everything; node tests on loop devices (root)
#
# Needs `make build` and csi-sanity (hack/install-tools.sh). Logs go to
# $LOGDIR (default: a fresh temporary directory, printed at the end).
set -uo pipefail
mode=${1:-full}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/bin
sanity=$(command -v csi-sanity || echo "$(go env GOPATH)/bin/csi-sanity")
for f in "$bin/cloudsigma-sim" "$bin/cloudsigma-csi-driver" "$sanity"; do
	[ -x "$f" ] || { echo "missing $f: run make build and hack/install-tools.sh" >&2; exit 1; }
done
LOGDIR=${LOGDIR:-$(mktemp -d /tmp/sanity-cli.XXXXXX)}
mkdir -p "$LOGDIR"
work=$(mktemp -d /tmp/sanity-cli-work.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

srv=5b4a69a3-8e78-4c45-a8ba-8b13f0895e23 # the simulated server this machine is
sock=$work/csi.sock
# Port 0: the simulator picks a free port and logs its URL.
simargs=(--listen 127.0.0.1:0 --username sanity@example.com --password sanity --local-server "$srv")
drvargs=(--endpoint "unix://$sock" --mode all --allow-insecure-http --node-id "$srv")
sanargs=(--csi.endpoint "unix://$sock" --csi.testvolumesize 1073741824)
case $mode in
full)
	[ "$(id -u)" = 0 ] || { echo "full mode needs root: loop devices, mkfs, mounts" >&2; exit 1; }
	simargs+=(--guest-devices "$work/by-id")
	drvargs+=(--by-id-dir "$work/by-id")
	# SERIALS=other|none: the guest's disks show serials naming no drive,
	# or none; the node identifies drives by evidence (docs/identity.md),
	# reading the server context on the simulator's pseudo-terminal.
	if [ -n "${SERIALS:-}" ]; then
		simargs+=(--guest-serials "$srv=$SERIALS")
		drvargs+=(--server-context-device "$work/by-id/ttyS1")
	fi
	sanargs+=(--csi.mountdir "$work/mnt" --csi.stagingdir "$work/stage")
	;;
controller)
	sanargs+=(--ginkgo.focus 'Identity Service|Controller Server' --ginkgo.skip 'Node Service')
	;;
*) echo "usage: $0 controller|full" >&2; exit 2 ;;
esac

"$bin/cloudsigma-sim" "${simargs[@]}" >"$LOGDIR/sim.log" 2>&1 &
pids+=($!)
api=
for _ in $(seq 100); do
	api=$(grep -o 'serving http://[^ ]*' "$LOGDIR/sim.log" | head -1 | cut -d' ' -f2) && [ -n "$api" ] && break
	sleep 0.1
done
[ -n "$api" ] || { echo "the simulator did not start: $LOGDIR/sim.log" >&2; exit 1; }
CLOUDSIGMA_USERNAME=sanity@example.com CLOUDSIGMA_PASSWORD=sanity \
	"$bin/cloudsigma-csi-driver" "${drvargs[@]}" --api-url "$api" >"$LOGDIR/driver.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done

"$sanity" "${sanargs[@]}" >"$LOGDIR/sanity.log" 2>&1
rc=$?
sed 's/\x1b\[[0-9;]*m//g' "$LOGDIR/sanity.log" | grep -E '^(Ran |SUCCESS|FAIL)|\[FAIL\]'
echo "csi-sanity $mode: exit $rc; logs in $LOGDIR (sim.log, driver.log, sanity.log)"
exit $rc
