#!/usr/bin/env bash
# The README's test command: ./contrib/run-tests.sh [pytest args...]
#
# As root: prepares the host (contrib/prepare-host.sh), copies this tree to a directory
# the unprivileged test user owns, runs the suite as that user, then the few root-only
# tests (marker `asroot`) as root. As a normal user: makes a virtualenv with a Python
# this user can read, installs the project, and runs the suite directly.
# The exit status is pytest's (non-zero when either pass failed).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
test_user=${RL_TEST_USER:-rltest}

if [ "$(id -u)" = 0 ] && [ -z "${RL_TESTS_AS_ROOT:-}" ]; then
  bash "$here/contrib/prepare-host.sh"
  work=$(mktemp -d /var/tmp/rl-tests.XXXXXX)
  roottmp=$(mktemp -d /tmp/rl-root-pytest.XXXXXX)
  trap 'rm -rf "$work" "$roottmp"' EXIT
  tar -C "$here" --exclude=./.git --exclude=./.venv --exclude=./.nox \
      --exclude='__pycache__' --exclude='*.egg-info' -cf - . | tar -C "$work" -xf -
  chown -R "$test_user:" "$work"
  chmod 0755 "$work"
  home=$(getent passwd "$test_user" | cut -d: -f6)
  rc=0
  runuser -u "$test_user" -- env -i HOME="$home" USER="$test_user" LOGNAME="$test_user" \
      PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 CI="${CI:-}" RL_TESTS_STRICT=1 \
      PIP_FIND_LINKS="${PIP_FIND_LINKS:-}" PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 \
      bash "$work/contrib/run-tests.sh" "$@" || rc=$?
  echo "=== root pass: tests marked asroot"
  rc2=0
  (cd "$work" && env -u XDG_RUNTIME_DIR RL_TESTS_STRICT=1 PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
      "$work/.venv/bin/python" -m pytest -m asroot -p no:cacheprovider \
      --basetemp="$roottmp" "$@") || rc2=$?
  [ "$rc" = 0 ] && rc=$rc2
  exit "$rc"
fi

# A normal user (or root with RL_TESTS_AS_ROOT=1, which runs everything as root).
py=""
for candidate in ${RL_PYTHON:-} /usr/bin/python3 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys, venv; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    py=$candidate; break
  fi
done
[ -n "$py" ] || { echo "run-tests: need Python >= 3.11 with venv (apt-get install python3-venv)" >&2; exit 2; }
venv=${RL_TEST_VENV:-$here/.venv}
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
log=$(mktemp)
if ! { "$venv/bin/python" -m pip install -q --upgrade pip &&
       "$venv/bin/python" -m pip install -q -e "$here[test,lint]"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "run-tests: installing the project failed (root prepares the host: libfuse3-dev, pkg-config, gcc, python3-dev)" >&2
  exit 2
fi
rm -f "$log"
export PATH="$venv/bin:$PATH"
cd "$here"
marker="not asroot"
[ "$(id -u)" = 0 ] && marker="asroot or not asroot"
exec "$venv/bin/python" -m pytest -m "$marker" "$@"
