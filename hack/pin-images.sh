#!/usr/bin/env bash
# Pins the images this project runs to the digests their registries serve
# for their tags today:
#   - the Dockerfile's base images, the ARG lines NAME=repository:tag@sha256:...
#     before the first FROM (the tag is kept; only the digest changes);
#   - the chart's sidecar images: images.<name>.digest in
#     charts/cloudsigma-csi/values.yaml for every entry with a tag (the
#     driver's own images, tag "", get their digests from a release).
# Run it to move a pin, then review and commit the diff. With --check it
# changes nothing and exits 1 if any pin differs from what the registry
# serves now (a scheduled job can run it).
#
# Usage: hack/pin-images.sh [--check] [--root DIR]
# Needs curl and jq, and HTTPS access to docker.io, gcr.io and
# registry.k8s.io (the Docker Registry HTTP API v2, anonymous pull tokens).
# PIN_IMAGES_REGISTRY=http://host:port sends every registry request there
# instead (the project's test serves a fake registry so).
set -euo pipefail

check=false
root="$(cd "$(dirname "$0")/.." && pwd)"
while [ $# -gt 0 ]; do
	case "$1" in
	--check) check=true ;;
	--root) root="$2"; shift ;;
	*) echo "usage: $0 [--check] [--root DIR]" >&2; exit 2 ;;
	esac
	shift
done
for tool in curl jq; do
	command -v "$tool" >/dev/null || { echo "pin-images: $tool is missing (hack/install-tools.sh installs it)" >&2; exit 2; }
done

accept='application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'

# digest REPOSITORY TAG prints the digest the registry serves for the tag:
# the multi-platform index where there is one, which is what a pull by tag
# resolves first.
digest() {
	local repo="$1" tag="$2" host path base headers auth=() www realm service scope token
	host="${repo%%/*}"
	path="${repo#*/}"
	if [ "$host" = "$repo" ] || { [[ "$host" != *.* ]] && [[ "$host" != *:* ]]; }; then
		host=docker.io path="$repo" # Docker Hub: no registry in the name
	fi
	[ "$host" = docker.io ] && { host=registry-1.docker.io; [[ "$path" == */* ]] || path="library/$path"; }
	base="${PIN_IMAGES_REGISTRY:-https://$host}"
	for attempt in 1 2; do
		headers="$(curl -sS -o /dev/null -D - -I "${auth[@]}" -H "Accept: $accept" "$base/v2/$path/manifests/$tag")"
		local status
		status="$(printf '%s\n' "$headers" | awk 'NR==1 {print $2}')"
		if [ "$status" = 401 ] && [ "$attempt" = 1 ]; then
			# Anonymous pull: the challenge names the token service.
			www="$(printf '%s\n' "$headers" | tr -d '\r' | grep -i '^www-authenticate:' | head -1)"
			realm="$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$www")"
			service="$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$www")"
			scope="$(sed -n 's/.*scope="\([^"]*\)".*/\1/p' <<<"$www")"
			[ -n "$realm" ] || { echo "pin-images: $repo:$tag: 401 without a Bearer challenge" >&2; return 1; }
			token="$(curl -sSf -G "$realm" --data-urlencode "service=$service" \
				--data-urlencode "scope=${scope:-repository:$path:pull}" | jq -r '.token // .access_token')"
			auth=(-H "Authorization: Bearer $token")
			continue
		fi
		if [ "$status" != 200 ]; then
			echo "pin-images: $repo:$tag: HTTP $status from $base/v2/$path/manifests/$tag" >&2
			return 1
		fi
		local d
		d="$(printf '%s\n' "$headers" | tr -d '\r' | awk 'tolower($1)=="docker-content-digest:" {print $2}')"
		[[ "$d" =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "pin-images: $repo:$tag: no digest in the answer" >&2; return 1; }
		echo "$d"
		return 0
	done
}

stale=0
# note OLD NEW WHAT records a pin that moves.
note() {
	if [ "$1" != "$2" ]; then
		echo "pin-images: $3: ${1:-none} -> $2"
		stale=1
	fi
}

# The Dockerfile's base images.
dockerfile="$root/Dockerfile"
tmp="$(mktemp)"
trap 'rm -f "$tmp" "$tmp.map"' EXIT
cp "$dockerfile" "$tmp"
while IFS= read -r line; do
	name="${line#ARG }"; name="${name%%=*}"
	ref="${line#*=}"
	image="${ref%@*}" old="${ref##*@}"
	new="$(digest "${image%:*}" "${image##*:}")"
	note "$old" "$new" "Dockerfile $name ($image)"
	sed -i "s|^ARG $name=.*|ARG $name=$image@$new|" "$tmp"
done < <(awk '/^FROM /{exit} /^ARG [A-Z_]+=[^ ]+:[^ ]+@sha256:/' "$dockerfile")

# The chart's images with a tag.
values="$root/charts/cloudsigma-csi/values.yaml"
awk '/^images:/{inimg=1; next} inimg && /^[^ #]/{inimg=0}
	inimg && /^  [A-Za-z]+:/{name=$1; sub(":", "", name)}
	inimg && /^    repository:/{repo[name]=$2}
	inimg && /^    tag:/{tag[name]=$2}
	inimg && /^    digest:/{d=$2; gsub("\"", "", d); print name, repo[name], tag[name], d}' "$values" >"$tmp.map"
cp "$values" "$tmp.values"
trap 'rm -f "$tmp" "$tmp.map" "$tmp.values"' EXIT
while read -r name repo tag old; do
	tag="${tag//\"/}"
	[ -n "$tag" ] || continue
	new="$(digest "$repo" "$tag")"
	note "$old" "$new" "chart images.$name ($repo:$tag)"
	awk -v n="$name" -v d="$new" '/^images:/{inimg=1} inimg && /^[^ #]/ && !/^images:/{inimg=0}
		inimg && /^  [A-Za-z]+:/{cur=$1; sub(":", "", cur)}
		inimg && cur==n && /^    digest:/{sub(/digest:.*/, "digest: \"" d "\"")} {print}' "$tmp.values" >"$tmp.values.new"
	mv "$tmp.values.new" "$tmp.values"
done <"$tmp.map"

if $check; then
	[ "$stale" = 0 ] && echo "pin-images: every pin is what its registry serves"
	exit "$stale"
fi
cp "$tmp" "$dockerfile"
cp "$tmp.values" "$values"
[ "$stale" = 0 ] && echo "pin-images: every pin is what its registry serves" || echo "pin-images: pins updated; review the diff"
