# syntax=docker/dockerfile:1
#
# The CloudSigma CSI driver image. One image serves both plugins:
#   controller: talks to the CloudSigma API only; the manifests run it as a
#               non-root user (runAsNonRoot/runAsUser 65532 in the Deployment's
#               securityContext), so no USER line is needed here.
#   node:       formats, mounts and resizes block devices, which needs root and a
#               privileged container, so the image itself cannot drop to a USER.
#
# Build: docker build --build-arg VERSION=v0.1.0 -t <registry>/cloudsigma-csi-driver:v0.1.0 .

# Pinned builder: bump together with the go directive in go.mod.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Module download first so source edits reuse the cached layer.
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY pkg/ pkg/
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# Static binary: the runtime image carries no Go or C toolchain libraries.
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/cloudsigma-csi/driver/pkg/driver.version=${VERSION}" \
      -o /out/cloudsigma-csi-driver ./cmd/cloudsigma-csi-driver

# Debian point release pinned, like the builder (same bookworm userland).
FROM debian:12.11-slim
# What the node plugin executes (through k8s.io/mount-utils and udev):
#   e2fsprogs   mkfs.ext4, resize2fs, e2fsck, dumpe2fs
#   xfsprogs    mkfs.xfs, xfs_growfs, xfs_repair
#   util-linux  blkid, findmnt, blockdev, fsck
#   mount       mount, umount, losetup (a separate package in bookworm)
#   udev        udevadm settle/trigger after hot-plug, to wait for by-id links
#   ca-certificates  TLS to the CloudSigma API (controller)
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates e2fsprogs xfsprogs util-linux mount udev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/cloudsigma-csi-driver /usr/local/bin/cloudsigma-csi-driver
ENTRYPOINT ["/usr/local/bin/cloudsigma-csi-driver"]
