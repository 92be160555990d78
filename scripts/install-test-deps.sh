#!/usr/bin/env bash
# Install the Debian packages the integration tests run real servers from.
# Idempotent and quick when everything is there: dpkg-query is asked before apt is touched.
# The tests start their own private servers, so the system services these packages ship
# must never be started (they would take ports such as 143/993 and run as daemons).
set -euo pipefail

# chromium: the web console tests drive it headless through Playwright (no browser download).
# slapd + ldap-utils: the LDAP provisioning tests start a private OpenLDAP (slapadd, slaptest).
# softhsm2: the school-record signing tests keep the issuing key on a PKCS#11 token (softhsm2-util).
# debootstrap, docker-compose (+ docker.io): the image tests (tests/e2e/test_image.py) make the base image from
# Debian's packages (no Docker Hub), start deploy/compose.yaml (compose v1) and start Debian's dockerd themselves
# when no engine runs. A host with an engine of its own (Docker's docker-ce, which conflicts with docker.io) keeps it.
PACKAGES=(dovecot-imapd dovecot-core chromium slapd ldap-utils softhsm2 debootstrap docker-compose)
if ! command -v dockerd >/dev/null 2>&1; then
    PACKAGES+=(docker.io)
fi
# System services that belong to the packages above; stopped again if something started them.
SERVICES=(dovecot slapd)

missing=()
for pkg in "${PACKAGES[@]}"; do
    # dpkg -s also succeeds for removed-but-configured packages, so check the status itself.
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "test dependencies already installed: ${PACKAGES[*]}"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# policy-rc.d exit 101 tells invoke-rc.d "do not start services": the postinst then leaves
# dovecot stopped. Only install our own if none exists, and always remove exactly ours.
POLICY=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    ours="yes"
fi
cleanup() {
    if [ -n "$ours" ]; then
        $SUDO rm -f "$POLICY"
    fi
}
trap cleanup EXIT

echo "installing: ${missing[*]}"
# Another apt (a second test run, unattended upgrades) may hold dpkg's lock: wait for it, do not fail.
LOCK_WAIT=(-o DPkg::Lock::Timeout=600)
$SUDO apt-get "${LOCK_WAIT[@]}" update -qq
$SUDO apt-get "${LOCK_WAIT[@]}" install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"

# Belt and braces: on hosts where the policy is ignored (systemd units started directly),
# stop and disable the system service so it does not hold IMAP ports or run unexpectedly.
for svc in "${SERVICES[@]}"; do
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true
        $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
        $SUDO service "$svc" stop >/dev/null 2>&1 || true
    fi
done

echo "installed: ${missing[*]}"
