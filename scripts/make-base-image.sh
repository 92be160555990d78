#!/usr/bin/env bash
# Make the Debian 12 (bookworm) base image of edudesk's Dockerfile from Debian's packages, without Docker Hub:
# debootstrap --variant=minbase into a temp dir, then `docker import`. For air-gapped schools and this CI.
#   scripts/make-base-image.sh [TAG]        (default edudesk-base:bookworm; EDUDESK_BASE_REBUILD=1 forces)
#   docker build --build-arg BASE=edudesk-base:bookworm -t edudesk .
# Skips the work when the image exists. Needs root (debootstrap chroots), debootstrap and a running dockerd.
# EDUDESK_DEBIAN_MIRROR names another mirror (a school's own apt cache).
set -euo pipefail

TAG="${1:-edudesk-base:bookworm}"
SUITE=bookworm
MIRROR="${EDUDESK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What edudesk needs at run time: the interpreter and venv (the wheels are installed into /opt/edudesk),
# certificates for IMAP/SMTP over TLS and the chat APIs, time zones (Asia/Ho_Chi_Minh deadlines).
# asyncpg and the other binary wheels bring their own libraries (manylinux); no libpq needed.
PACKAGES=python3,python3-venv,ca-certificates,tzdata

if [ -z "${EDUDESK_BASE_REBUILD:-}" ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG already there (EDUDESK_BASE_REBUILD=1 to make it again)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "make-base-image.sh: debootstrap needs root" >&2
    exit 1
fi

ROOT="$(mktemp -d /var/tmp/edudesk-base.XXXXXX)"
cleanup() { rm -rf --one-file-system "$ROOT"; }
trap cleanup EXIT

start=$(date +%s)
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR"

# apt inside the image, as in Debian's own images: the mirror and security updates, no recommends,
# services never started by package scripts (there is no init in a container), no caches kept.
cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$ROOT/etc/apt/apt.conf.d/90edudesk"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
ln -sf /usr/share/zoneinfo/Asia/Ho_Chi_Minh "$ROOT/etc/localtime"
echo "Asia/Ho_Chi_Minh" >"$ROOT/etc/timezone"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/*

tar --numeric-owner -C "$ROOT" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $SUITE + $PACKAGES" - "$TAG"
echo "base image $TAG made in $(( $(date +%s) - start )) s: $(docker image inspect -f '{{.Size}}' "$TAG") bytes"
