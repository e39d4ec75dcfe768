# syntax=docker/dockerfile:1
#
# The CloudSigma CSI driver's two images, from one build of the static binary:
#   controller (--target controller): distroless static, no shell, no package
#               manager, user 65532 (nonroot). It talks to the CloudSigma API
#               only; the base carries the CA certificates for its TLS.
#   node       (--target node, the default): Debian slim with only what the
#               node plugin executes. It formats, mounts and resizes block
#               devices, which needs root in a privileged container, so it has
#               no USER.
#
# Build:
#   docker build --target controller --build-arg VERSION=v0.1.0 -t <registry>/cloudsigma-csi-controller:v0.1.0 .
#   docker build --target node       --build-arg VERSION=v0.1.0 -t <registry>/cloudsigma-csi-node:v0.1.0 .
#
# Base images are pinned by tag and digest: the tag says what the image is,
# the digest decides which bytes are used. `hack/pin-images.sh` resolves each
# tag's current digest from its registry and rewrites these three lines (and
# the chart's image digests); review its diff like any other change.
# The builder's tag follows the go directive of go.mod.
ARG GO_IMAGE=golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d
ARG CONTROLLER_BASE=gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
ARG NODE_BASE=debian:12.13-slim@sha256:67b30a61dc87758f0caf819646104f29ecbda97d920aaf5edc834128ac8493d3

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Module download first so source edits reuse the cached layer.
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY pkg/ pkg/
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# Static binary: neither runtime image carries Go or C toolchain libraries.
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/cloudsigma-csi/driver/pkg/driver.version=${VERSION}" \
      -o /out/cloudsigma-csi-driver ./cmd/cloudsigma-csi-driver

FROM ${CONTROLLER_BASE} AS controller
COPY --from=build /out/cloudsigma-csi-driver /cloudsigma-csi-driver
USER 65532:65532
ENTRYPOINT ["/cloudsigma-csi-driver"]

FROM ${NODE_BASE} AS node
# What the node plugin executes (through k8s.io/mount-utils and udev), and
# nothing else: no CA certificates (the node plugin never calls the API).
#   e2fsprogs   mkfs.ext4, resize2fs, e2fsck, dumpe2fs
#   xfsprogs    mkfs.xfs, xfs_growfs, xfs_repair
#   util-linux  blkid, findmnt, blockdev, fsck
#   mount       mount, umount, losetup (a separate package in bookworm)
#   udev        udevadm settle/trigger after hot-plug, to wait for by-id links
# The upgrade brings the base's packages to the security fixes published
# since its point release, as the packages installed here already are.
RUN apt-get update \
 && apt-get upgrade -y \
 && apt-get install -y --no-install-recommends \
      e2fsprogs xfsprogs util-linux mount udev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/cloudsigma-csi-driver /usr/local/bin/cloudsigma-csi-driver
ENTRYPOINT ["/usr/local/bin/cloudsigma-csi-driver"]
