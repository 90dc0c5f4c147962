#!/usr/bin/env bash
# The README's main job: ./contrib/demo.sh
#
# Builds a small busybox-static image offline, serves it from a real registry on 127.0.0.1,
# then, as an unprivileged user, pulls it with rl and runs a real container from it.
# As root it first prepares the host (contrib/prepare-host.sh) and runs the demo as the
# unprivileged user rltest; as a normal user it runs the demo directly.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
user=${RL_TEST_USER:-rltest}

if [ "$(id -u)" = 0 ]; then
  bash "$here/contrib/prepare-host.sh"
  work=$(mktemp -d /var/tmp/rl-demo.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  tar -C "$here" --exclude=./.git --exclude=./.venv --exclude=./.nox \
      --exclude='__pycache__' --exclude='*.egg-info' -cf - . | tar -C "$work" -xf -
  chown -R "$user:" "$work"
  home=$(getent passwd "$user" | cut -d: -f6)
  # Not exec: the trap above removes the copy when the demo ends.
  runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
      PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 \
      PIP_FIND_LINKS="${PIP_FIND_LINKS:-}" bash "$work/contrib/demo.sh" "$@" && rc=0 || rc=$?
  exit "$rc"
fi

venv=${RL_TEST_VENV:-$here/.venv}
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -e "$here[test]" >/dev/null 2>&1 ||
  "$venv/bin/python" -m pip install -e "$here[test]"
export PATH="$venv/bin:$PATH"
cd "$here"
exec "$venv/bin/python" -m contrib.demo "$@"
