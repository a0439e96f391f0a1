#!/usr/bin/env bash
# A local Debian base for deploy/Dockerfile, made without any registry:
#
#   scripts/base-image.sh [TAG]      (default watchdog-test/debian-python:bookworm)
#
# No registry is reachable from the test machines, so python:3.11-slim cannot be pulled.
# This makes a Debian bookworm root filesystem with `debootstrap --variant=minbase` plus
# only what the image needs (python3, python3-venv for the build stage's virtualenv,
# ca-certificates for pip), and `docker import`s it; then
#   docker build --build-arg BASE_IMAGE=watchdog-test/debian-python:bookworm ...
# builds the sidecar on Debian's own python3 (3.11 in bookworm).
#
# Cached twice, so a second run pays nothing: the engine's image is reused when its
# label carries this script's content hash, and the root filesystem's tarball is kept
# outside the clone in $WATCHDOG_TEST_CACHE (default ~/.cache/watchdog-test), named by
# that hash, for a fresh engine (the suite's own dockerd starts on an empty data root).
# Needs root (debootstrap) and Debian's debootstrap; DOCKER_HOST is honoured.
set -euo pipefail

tag=${1:-watchdog-test/debian-python:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${WATCHDOG_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/watchdog-test}
key=$(sha256sum "$0" | cut -c1-16)
tarball=$cache/debian-python-bookworm-$key.tar

have=$(docker image inspect --format '{{ index .Config.Labels "org.watchdog.base-key" }}' \
  "$tag" 2>/dev/null || true)
if [ "$have" = "$key" ]; then
  echo "base-image: $tag is there (key $key)"
  exit 0
fi

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || {
    echo "base-image: debootstrap is missing: apt-get install -y debootstrap" >&2
    exit 1
  }
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  PATH=$PATH:/usr/sbin debootstrap --variant=minbase \
    --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >&2
  # What a container never reads: downloaded .debs, apt lists, documentation, man pages.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
    "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/info/* "$root"/var/log/*.log
  tar --numeric-owner -C "$root" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  # Tarballs of an older script are of no further use.
  find "$cache" -maxdepth 1 -name 'debian-python-bookworm-*.tar' ! -name "${tarball##*/}" -delete
fi

docker import \
  --change "LABEL org.watchdog.base-key=$key" \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  "$tarball" "$tag" >/dev/null
echo "base-image: imported $tag (key $key) from $tarball"
