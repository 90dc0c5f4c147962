#!/usr/bin/env bash
# Prepare this host, as root, the way a distribution would for rootless containers:
# packages, device modes, an unprivileged test user with subuid/subgid ranges (rltest)
# and one without (rlnosub), which rltest may become through sudo for the tests that
# prove the single-id-mapping path. Idempotent: a second run changes nothing.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "prepare-host.sh: run as root" >&2; exit 1; }

packages=(
  uidmap slirp4netns nftables fuse3 libfuse3-dev pkg-config gcc libc6-dev busybox-static
  catatonit  # the init of `rl run --init` (tini would do too)
  docker-registry
  openssl  # signs the JWTs of the test token service (tests/support/tokenauth.py)
  python3 python3-venv python3-dev iproute2 sudo git
  libseccomp2
  systemd  # systemd-socket-activate: the socket-activation test of `rl system service`
  # peers for interop tests and benchmarks
  skopeo podman fuse-overlayfs runc
  curl  # the client of contrib/bench net's download through -p
  # podman-compose, the peer of `rl compose`; netavark and aardvark-dns give its rootless
  # networks name resolution between containers (CNI alone has none on Debian 12)
  podman-compose netavark aardvark-dns
)
# The default seccomp profile, /usr/share/containers/seccomp.json: Debian 12 ships it in
# golang-github-containers-common, later releases in containers-common.
if [ ! -e /usr/share/containers/seccomp.json ]; then
  if grep -q '^VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
    packages+=(golang-github-containers-common)
  else
    packages+=(containers-common)
  fi
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "prepare-host: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The docker CLI, a real client for the tests of `rl system service` (tests/api). A machine
# with a `docker` on PATH keeps it; otherwise Debian's docker.io, whose maintainer scripts
# would start dockerd (invoke-rc.d, deb-systemd-invoke): a policy-rc.d that forbids every
# start is in place during the install (unless one is there already, as in Debian's
# container images), and the units are disabled after it, so no daemon runs now or at
# the next boot. rl needs no daemon; only the client binary is used.
if ! command -v docker >/dev/null; then
  echo "prepare-host: installing docker.io for its docker CLI (no daemon is started)"
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    guard=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
  if command -v systemctl >/dev/null; then
    systemctl disable --now docker.socket docker.service containerd.service 2>/dev/null || true
  fi
  if [ -x /etc/init.d/docker ]; then
    update-rc.d docker disable >/dev/null 2>&1 || true
  fi
fi
# Debian starts the registry as a service on :5000; the tests start their own.
if command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi

# Distributions ship these 0666; these machines come with 0600.
chmod 0666 /dev/fuse
[ -e /dev/net/tun ] && chmod 0666 /dev/net/tun

add_range() {  # file user: give user a 65536-id range that overlaps no other
  local file=$1 user=$2
  grep -q "^$user:" "$file" 2>/dev/null && return
  local top
  top=$(awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' "$file" 2>/dev/null || echo 100000)
  echo "$user:$top:65536" >> "$file"
}

if ! id rltest >/dev/null 2>&1; then
  useradd -m -s /bin/bash rltest
fi
touch /etc/subuid /etc/subgid
add_range /etc/subuid rltest
add_range /etc/subgid rltest

if ! id rlnosub >/dev/null 2>&1; then
  useradd -m -s /bin/bash -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 rlnosub
fi
sed -i '/^rlnosub:/d' /etc/subuid /etc/subgid

echo 'rltest ALL=(rlnosub) NOPASSWD:SETENV: ALL' > /etc/sudoers.d/rl-tests
chmod 0440 /etc/sudoers.d/rl-tests
echo "prepare-host: ready (rltest has $(grep '^rltest:' /etc/subuid), rlnosub has no range)"
