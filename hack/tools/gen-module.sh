#!/usr/bin/env bash
# Regenerates one tools module under hack/tools/ from the upstream module's
# own go.mod, so that `go build` through the module proxy builds the same
# binaries the upstream repository does. Run it only to change a pinned
# version; hack/e2e-binaries.sh builds from the committed go.mod and go.sum.
#
#   hack/tools/gen-module.sh DIR MODULE VERSION STAGING_VERSION TOOL...
#
# Upstream replace directives are copied. Local ones cannot be served by the
# proxy, so `./staging/src/k8s.io/X` becomes `k8s.io/X STAGING_VERSION` and
# `./client` (external-snapshotter) becomes `MODULE-parent/client/vN VERSION`.
set -euo pipefail
dir=$1 module=$2 version=$3 staging=$4
shift 4
cd "$(dirname "$0")/$dir"
rm -f go.mod go.sum
export GOFLAGS=-mod=mod
upstream=$(cd / && go mod download -json "$module@$version" | jq -r .GoMod)
go mod init "github.com/cloudsigma-csi/driver/hack/tools/$dir" 2>/dev/null
go mod edit -go="$(go mod edit -json "$upstream" | jq -r .Go)" -require="$module@$version"
go mod edit -json "$upstream" | jq -r '.Replace[]? | [.Old.Path, (.Old.Version // ""), .New.Path, (.New.Version // "")] | join("|")' |
	while IFS='|' read -r old oldv new newv; do
		from=$old${oldv:+@$oldv}
		case $new in
		./staging/src/*) go mod edit -replace="$from=$old@$staging" ;;
		./client) go mod edit -replace="$from=$old@$version" ;;
		./* | ../*) echo "unhandled local replace $old => $new" >&2; exit 1 ;;
		*) go mod edit -replace="$from=$new${newv:+@$newv}" ;;
		esac
	done
for tool in "$@"; do go mod edit -tool="$tool"; done
go mod tidy
