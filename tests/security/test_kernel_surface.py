"""What a container reaches of the kernel, tried for real from real containers of the test
user: the default seccomp filter (nested user namespaces, keyctl, bpf, ...), the session
keyring, raw frames past the host-loopback guard, /sys with --network host, and the
--security-opt flags.

The probe is tests/security/kprobe.c, built here with gcc -static (busybox has no way to
make these syscalls) into a `kprobe` image in the test registry.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import time
from pathlib import Path

import pytest

from tests.volumes import ctr

# real containers of the test user (tests/volumes/ctr.py), as fixtures of this module
ctr_images = ctr.ctr_images
rlc = ctr.rlc

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def kprobe_image(ctr_images, tmp_path_factory):
    from tests.support import images

    return images.push_static_probe(ctr_images, tmp_path_factory.mktemp("kprobe"),
                                    HERE / "kprobe.c", "kprobe", ["kprobe", "syscalls"])


def ok(rl, *args, timeout=60):
    r = rl(*args, timeout=timeout)
    assert r.returncode == 0, f"rl {' '.join(args)} exited {r.returncode}: {r.stderr}"
    return r


def probe(rl, *run_args) -> dict[str, str]:
    out = ok(rl, "run", "--rm", *run_args).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


# -- seccomp ------------------------------------------------------------------------------

DENIED = ("unshare", "keyctl", "add_key", "bpf", "perf_event_open", "mount", "setns",
          "pivot_root")


def test_default_seccomp_denies_what_dockers_profile_denies(rlc, kprobe_image):
    ok(rlc, "pull", "-q", kprobe_image)
    seen = probe(rlc, kprobe_image, "kprobe", "syscalls")
    assert seen["getpid"] == "ok"
    assert {name: seen[name] for name in DENIED} == {name: "EPERM" for name in DENIED}
    # the same from `rl exec`, and from a child of the command
    ok(rlc, "run", "-d", "--name", "k", kprobe_image, "sleep", "60")
    r = ok(rlc, "exec", "k", "sh", "-c", "kprobe syscalls")
    assert "unshare EPERM" in r.stdout and "keyctl EPERM" in r.stdout


def test_nested_user_namespace_is_refused_unless_unconfined(rlc):
    r = rlc("run", "--rm", rlc.busybox, "unshare", "-U", "true")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    # the test can fail: without the filter the same command works
    ok(rlc, "run", "--rm", "--security-opt", "seccomp=unconfined", rlc.busybox,
       "unshare", "-U", "true")
    # and CAP_SYS_ADMIN lifts the rule, as in Docker's profile
    ok(rlc, "run", "--rm", "--cap-add", "SYS_ADMIN", rlc.busybox, "unshare", "-U", "true")


def test_unconfined_and_a_profile_file(rlc, kprobe_image, tmp_path):
    ok(rlc, "pull", "-q", kprobe_image)
    seen = probe(rlc, "--security-opt", "seccomp=unconfined", kprobe_image, "kprobe",
                 "syscalls")
    assert seen["unshare"] == "ok" and seen["keyctl"] == "ok" and seen["setns"] == "EBADF"
    profile = tmp_path / "deny-getpid.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    seen = probe(rlc, "--security-opt", f"seccomp={profile}", kprobe_image, "kprobe",
                 "syscalls")
    assert seen["getpid"] == "EACCES" and seen["unshare"] == "ok"


def test_busybox_init_and_terminal_work_under_the_filter(rlc):
    r = ok(rlc, "run", "--rm", "--init", rlc.busybox, "sh", "-c",
           "echo $$; ls / >/dev/null; wget -q -O- http://127.0.0.1:1 2>/dev/null; date >/dev/null")
    assert r.stdout.split()[0] != "1"  # catatonit or tini is pid 1
    r = ok(rlc, "run", "--rm", "-t", rlc.busybox, "sh", "-c", "tty")
    assert "/dev/pts/" in r.stdout


def test_inspect_shows_the_security_options(rlc):
    ok(rlc, "create", "--name", "a", rlc.busybox, "true")
    ok(rlc, "create", "--name", "b", "--security-opt", "seccomp=unconfined",
       "--security-opt", "no-new-privileges=false", "--security-opt", "label=disable",
       rlc.busybox, "true")
    a = json.loads(ok(rlc, "inspect", "a").stdout)[0]
    b = json.loads(ok(rlc, "inspect", "b").stdout)[0]
    assert a["HostConfig"]["SecurityOpt"] == ["seccomp=default", "no-new-privileges"]
    assert b["HostConfig"]["SecurityOpt"] == ["seccomp=unconfined", "label=disable"]
    assert "seccomp" in a["OCISpec"]["linux"] and "seccomp" not in b["OCISpec"]["linux"]
    assert b["OCISpec"]["process"]["noNewPrivileges"] is False


@pytest.mark.parametrize("opt, words", [
    ("bogus=1", "unknown --security-opt"),
    ("seccomp=/nonexistent/profile.json", "no such file"),
    ("label=type:spc_t", "only label=disable"),
    ("apparmor=myprofile", "only apparmor=unconfined"),
    ("no-new-privileges=maybe", "no-new-privileges"),
])
def test_a_bad_security_opt_is_one_line_and_creates_nothing(rlc, opt, words):
    before = ok(rlc, "ps", "-aq").stdout
    images_before = ok(rlc, "images", "-q").stdout
    r = rlc("run", "--rm", "--security-opt", opt, "kprobe-never-pulled")
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and words in r.stderr
    assert ok(rlc, "ps", "-aq").stdout == before
    assert ok(rlc, "images", "-q").stdout == images_before


# -- the session keyring ------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
KEY_SPEC_SESSION_KEYRING = -3


def _keyctl(op: int, arg) -> int:
    fn = _libc.syscall
    fn.argtypes = [ctypes.c_long, ctypes.c_long,
                   ctypes.c_long if isinstance(arg, int) else ctypes.c_char_p]
    return fn(250, op, arg)


@pytest.fixture
def session_key():
    """A `user` key with a secret payload in a session keyring of this test process (its
    children, rl and the container, inherit it), as a Kerberos login leaves one."""
    if os.uname().machine != "x86_64":
        pytest.skip("the keyctl numbers here are x86_64's")
    if _keyctl(1, b"rl-test-session") < 0:  # KEYCTL_JOIN_SESSION_KEYRING
        pytest.skip(f"no kernel keyrings: {os.strerror(ctypes.get_errno())}")
    desc = f"rl-canary-{os.getpid()}-{time.monotonic_ns()}"
    secret = b"KRB5-TICKET-" + os.urandom(8).hex().encode()
    fn = _libc.syscall
    fn.argtypes = [ctypes.c_long, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                   ctypes.c_size_t, ctypes.c_long]
    key = fn(248, b"user", desc.encode(), secret, len(secret), KEY_SPEC_SESSION_KEYRING)
    assert key > 0, os.strerror(ctypes.get_errno())
    yield desc, secret.decode()
    _keyctl(21, key)  # KEYCTL_INVALIDATE


def test_a_container_cannot_read_the_users_session_keyring(rlc, kprobe_image, session_key):
    desc, secret = session_key
    ok(rlc, "pull", "-q", kprobe_image)
    # this process finds the key (what the container must not): the test can fail
    fn = _libc.syscall
    fn.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_char_p,
                   ctypes.c_char_p, ctypes.c_long]
    assert fn(250, 10, KEY_SPEC_SESSION_KEYRING, b"user", desc.encode(), 0) > 0  # SEARCH
    for extra in ([], ["--security-opt", "seccomp=unconfined"]):
        r = ok(rlc, "run", "--rm", *extra, kprobe_image, "kprobe", "keyring", desc)
        assert secret not in r.stdout
        assert r.stdout.startswith("absent"), r.stdout
    ok(rlc, "run", "-d", "--name", "k", "--security-opt", "seccomp=unconfined",
       kprobe_image, "sleep", "60")
    r = ok(rlc, "exec", "k", "kprobe", "keyring", desc)
    assert secret not in r.stdout and r.stdout.startswith("absent"), r.stdout
    r = ok(rlc, "run", "--rm", rlc.busybox, "cat", "/proc/keys")
    assert desc not in r.stdout


# -- raw frames and the host-loopback guard -----------------------------------------------

def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _af_packet_run(rlc, image, *extra) -> tuple[str, bytes | None, bool]:
    """Run the packet probe in a container publishing a UDP port to the host's loopback
    (so slirp4netns has host loopback on, behind the nft guard). Returns the probe's
    output, what a UDP canary on the host's 127.0.0.1 received, and whether a TCP canary
    there was connected to."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", port))
        tcp.listen(4)
        udp.settimeout(1.5)
        tcp.settimeout(0.5)
        pub = _free_udp_port()
        r = ok(rlc, "run", "--rm", "-p", f"127.0.0.1:{pub}:{pub}/udp", *extra, image,
               "kprobe", "packet", str(port), "from-the-container")
        try:
            got = udp.recv(200)
        except TimeoutError:
            got = None
        try:
            conn, _ = tcp.accept()
            conn.close()
            connected = True
        except TimeoutError:
            connected = False
    return r.stdout, got, connected


def test_af_packet_cannot_pass_the_loopback_guard(rlc, kprobe_image):
    ok(rlc, "pull", "-q", kprobe_image)
    out, got, connected = _af_packet_run(rlc, kprobe_image)
    assert out.strip() == "socket EPERM"
    assert got is None and not connected
    # the probe does reach the host's loopback when NET_RAW is given back on purpose
    # (README, Networking): the assertions above are not vacuous
    out, got, connected = _af_packet_run(rlc, kprobe_image, "--cap-add", "NET_RAW")
    assert out.strip() == "sent"
    assert got == b"from-the-container" or connected


def test_net_raw_is_kept_without_the_guard(rlc):
    r = ok(rlc, "run", "--rm", rlc.busybox, "grep", "CapBnd", "/proc/self/status")
    assert int(r.stdout.split()[1], 16) & (1 << 13)  # CAP_NET_RAW, as Docker's default


# -- /sys with --network host -------------------------------------------------------------

def test_every_sys_mount_is_read_only_with_host_network(rlc):
    r = ok(rlc, "run", "--rm", "--network", "host", rlc.busybox, "cat", "/proc/self/mountinfo")
    sys_mounts = [line.split() for line in r.stdout.splitlines()
                  if line.split()[4] == "/sys" or line.split()[4].startswith("/sys/")]
    assert len(sys_mounts) > 1  # the host's /sys has submounts (cgroup, ...)
    rw = [f[4] for f in sys_mounts if "rw" in f[5].split(",")]
    assert rw == []
    r = rlc("run", "--rm", "--network", "host", rlc.busybox, "sh", "-c",
            "for d in $(awk '$5 ~ /^\\/sys\\// {print $5}' /proc/self/mountinfo); do "
            "mkdir $d/rl-probe 2>/dev/null && echo WROTE $d; done; true")
    assert "WROTE" not in r.stdout
