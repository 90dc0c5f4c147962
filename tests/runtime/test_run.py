"""`rl run`: what the container's process sees, as the unprivileged test user."""

from __future__ import annotations

import os
import re

import pytest

from rootless.runtime import idmap


def run(rl, *args, check=True):
    return rl("run", "--rm", "--network", "none", *args, check=check)


def test_echo_and_exit_code(rl):
    r = run(rl, "busybox", "sh", "-c", "echo hello; echo oops >&2; exit 42", check=False)
    assert r.returncode == 42
    assert r.stdout == "hello\n"
    assert r.stderr == "oops\n"


@pytest.mark.rootless
def test_uid_and_gid_map_with_subordinate_range(rl):
    uid, gid = os.getuid(), os.getgid()
    ur = idmap.read_ranges(idmap.SUBUID_FILE)
    gr = idmap.read_ranges(idmap.SUBGID_FILE)
    if not ur or not gr:
        pytest.skip("the test user has no subordinate range")
    r = run(rl, "busybox", "cat", "/proc/self/uid_map", "/proc/self/gid_map")
    rows = [tuple(int(x) for x in line.split()) for line in r.stdout.splitlines()]
    assert rows == [(0, uid, 1), (1, ur[0].start, ur[0].count),
                    (0, gid, 1), (1, gr[0].start, gr[0].count)]
    assert "warning" not in r.stderr


def test_single_mapping_without_range_warns_once(rl_nosub):
    r = rl_nosub("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                 "cat /proc/self/uid_map /proc/self/gid_map; id -u", check=True)
    lines = r.stdout.split("\n")
    uid_row = [int(x) for x in lines[0].split()]
    gid_row = [int(x) for x in lines[1].split()]
    assert uid_row[0] == 0 and uid_row[2] == 1 and uid_row[1] != 0
    assert gid_row[0] == 0 and gid_row[2] == 1
    assert lines[2] == "0"
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "usermod --add-subuids" in warnings[0]


def test_single_mapping_root_can_write_files_of_unmapped_owners(rl_nosub):
    # /home/user belongs to uid 1000 in the image, an id a single mapping cannot map: root
    # in the container must still be able to write there, as with podman.
    r = rl_nosub("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                 "echo hi > /home/user/new && cat /home/user/new && stat -c %u /home/user")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hi", "0"]


@pytest.mark.rootless
def test_keep_id_runs_as_own_uid(rl):
    uid = os.getuid()
    r = run(rl, "--userns=keep-id", "busybox", "sh", "-c", "id -u; id -g; cat /proc/self/uid_map")
    lines = r.stdout.splitlines()
    assert lines[0] == str(uid) and lines[1] == str(os.getgid())
    rows = [tuple(int(x) for x in line.split()) for line in lines[2:]]
    assert (uid, uid, 1) in rows
    assert sum(c for _, _, c in rows) > 1  # the subordinate range fills the rest


def test_root_by_default_and_user_flag(rl):
    assert run(rl, "busybox", "whoami").stdout.strip() == "root"
    r = run(rl, "-u", "1000", "layered", "sh", "-c", "id -u; id -g; echo $HOME")
    assert r.stdout.split() == ["1000", "1000", "/home/user"]
    r = run(rl, "-u", "user:root", "busybox", "id")
    assert "uid=1000(user)" in r.stdout and "gid=0(root)" in r.stdout


def test_image_owners_and_layers_visible(rl):
    r = run(rl, "layered", "sh", "-c",
            "ls -ln /home/user/secret; cat /home/user/secret; ls /data; ls /olddir; pwd")
    line = r.stdout.splitlines()[0]
    assert re.match(r"-rw-r-----\s+1\s+1000\s+1000\s", line), line
    assert "secret" in r.stdout
    assert r.stdout.splitlines()[2:] == ["keep.txt", "new", "/data"]
    # the image's default command and working dir
    assert run(rl, "layered").stdout == "keep\n"


def test_uid_1000_cannot_read_root_only_dir(rl):
    r = run(rl, "-u", "1000", "busybox", "ls", "/root", check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_host_pids_invisible_and_pid_1(rl):
    r = run(rl, "busybox", "sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'")
    pid, count = r.stdout.split()
    assert pid == "1"
    assert int(count) <= 3  # sh, ls, grep


def test_hostname_default_and_flag(rl):
    r = rl("run", "-d", "--network", "none", "busybox", "sh", "-c", "hostname; cat /etc/hostname",
           check=True)
    cid = r.stdout.strip()
    rl("wait", cid, check=True)
    assert rl("logs", cid).stdout.split() == [cid[:12], cid[:12]]
    r = run(rl, "--hostname", "box1", "busybox", "sh", "-c", "hostname; grep box1 /etc/hosts")
    assert r.stdout.splitlines()[0] == "box1"


def test_masked_and_readonly_paths(rl):
    from rootless.engine import spec

    # each OCI masked path this kernel has: empty inside, and covered by a mount
    masked = [p for p in spec.MASKED_PATHS if os.path.exists(p)]
    assert "/proc/keys" in masked and "/sys/firmware" in masked
    script = "".join(f"if [ -d {p} ]; then echo {p} $(ls -A {p} | wc -l);"
                     f"else echo {p} $(cat {p} | wc -c); fi;" for p in masked)
    script += "cut -d' ' -f5,6 /proc/self/mountinfo;"
    script += ("echo x > /proc/sys/kernel/hostname && echo sysctl-written;"
               "touch /sys/kernel/x 2>/dev/null && echo sys-written;")
    r = run(rl, "busybox", "sh", "-c", script, check=False)
    lines = r.stdout.splitlines()
    assert lines[:len(masked)] == [f"{p} 0" for p in masked]
    mounts = dict(line.split(" ", 1) for line in lines[len(masked):] if line.startswith("/"))
    for p in masked:
        assert p in mounts, p
    readonly = [p for p in spec.READONLY_PATHS if os.path.exists(p)]
    assert "/proc/sys" in readonly
    for p in readonly:
        assert p in mounts and mounts[p].split(",")[0] == "ro", (p, mounts.get(p))
    assert "sysctl-written" not in r.stdout
    assert "sys-written" not in r.stdout


def test_sys_read_only(rl):
    r = run(rl, "busybox", "sh", "-c", "grep ' /sys ' /proc/mounts")
    assert " ro," in r.stdout or r.stdout.split()[3].startswith("ro")


def test_host_file_not_reachable(rl, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host\n")
    r = run(rl, "busybox", "sh", "-c",
            f"cat {secret} /proc/1/root{secret} /proc/self/root{secret}; ls -A {rl.data_dir};"
            "ls -A /", check=False)
    assert "host\n" not in r.stdout
    assert r.stderr.count("No such file") == 4, r.stderr
    # the image's top-level entries and the runtime's /dev /proc /sys, nothing of the
    # host's root (/work, /opt, /lib, ...) nor the old root pivot_root left
    import io
    import tarfile

    from tests.support import images

    with tarfile.open(fileobj=io.BytesIO(images.busybox_layer().tar)) as t:
        image = {name.split("/")[0] for name in t.getnames()} - {"", "."}
    assert set(r.stdout.split()) == image | {"dev", "proc", "sys"}


def test_bind_mount_files_owned_by_user_on_host(rl, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "from-host").write_text("hi\n")
    r = run(rl, "-v", f"{shared}:/data", "busybox", "sh", "-c",
            "cat /data/from-host; echo made > /data/by-root; mkdir /data/dir; ls -ln /data/from-host")
    assert r.stdout.startswith("hi\n")
    assert " 0 " in r.stdout.splitlines()[-1]  # the host user is root inside
    st = os.stat(shared / "by-root")
    assert st.st_uid == os.getuid()
    assert os.stat(shared / "dir").st_uid == os.getuid()
    r = run(rl, "-v", f"{shared}:/data:ro", "busybox", "touch", "/data/nope", check=False)
    assert r.returncode != 0 and "Read-only" in r.stderr


@pytest.mark.rootless
def test_bind_mount_files_of_other_container_users(rl, tmp_path):
    # uid 1000 inside is the subordinate id start+999 outside; the host dir must let it write
    ur = idmap.read_ranges(idmap.SUBUID_FILE)
    gr = idmap.read_ranges(idmap.SUBGID_FILE)
    if not ur or not gr:
        pytest.skip("the test user has no subordinate range")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    run(rl, "-u", "1000:1000", "-v", f"{shared}:/data", "busybox", "sh", "-c",
        "echo x > /data/by-1000; ls -ln /data/by-1000")
    st = os.stat(shared / "by-1000")
    assert (st.st_uid, st.st_gid) == (ur[0].start + 999, gr[0].start + 999)
    # and the user's own file is root's inside, whatever the container user
    (shared / "mine").write_text("m\n")
    r = run(rl, "-u", "1000", "-v", f"{shared}:/data", "busybox", "stat", "-c", "%u", "/data/mine")
    assert r.stdout == "0\n"


def test_command_not_found_and_not_executable(rl):
    r = run(rl, "busybox", "no-such-command", check=False)
    assert r.returncode == 127
    assert "no-such-command" in r.stderr and "not found" in r.stderr
    r = run(rl, "busybox", "/etc/passwd", check=False)
    assert r.returncode == 126
    assert "/etc/passwd" in r.stderr
    assert rl("ps", "-aq", check=True).stdout == ""  # --rm removed them


def test_exit_code_of_a_signal(rl):
    r = run(rl, "--init", "busybox", "sh", "-c", "kill -KILL $$", check=False)
    assert r.returncode == 137


def test_env_workdir_entrypoint(rl, tmp_path):
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROM_FILE=1\nBOTH=file\n")
    r = run(rl, "--env-file", str(envfile), "-e", "BOTH=flag", "-e", "X=y z", "-w", "/tmp/new",
            "busybox", "sh", "-c", 'echo "$FROM_FILE $BOTH $X"; pwd; echo $HOSTNAME')
    lines = r.stdout.splitlines()
    assert lines[0] == "1 flag y z"
    assert lines[1] == "/tmp/new"
    r = run(rl, "--entrypoint", "echo", "busybox", "a", "b")
    assert r.stdout == "a b\n"


def test_read_only_rootfs(rl):
    r = run(rl, "--read-only", "busybox", "sh", "-c",
            "touch /x 2>&1; touch /dev/shm/ok && echo shm-ok", check=False)
    assert "Read-only file system" in r.stdout
    assert "shm-ok" in r.stdout


def test_capabilities_default_and_flags(rl):
    def capbnd(*flags):
        out = run(rl, *flags, "busybox", "grep", "CapBnd", "/proc/self/status").stdout
        return int(out.split()[1], 16)

    default = capbnd()
    assert default == 0xa80425fb  # Docker's default set
    assert capbnd("--cap-drop", "ALL") == 0
    assert capbnd("--cap-add", "NET_ADMIN") == default | (1 << 12)
    assert capbnd("--cap-drop", "chown") == default & ~1
    r = run(rl, "busybox", "grep", "NoNewPrivs", "/proc/self/status")
    assert r.stdout.split()[1] == "1"


def test_ulimit(rl):
    r = run(rl, "--ulimit", "nofile=123:456", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn")
    assert r.stdout.split() == ["123", "456"]


def test_init_is_pid_1(rl):
    r = run(rl, "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
    first, pid = r.stdout.splitlines()
    assert first.startswith("/dev/init")
    assert pid != "1"


def test_dev_and_fds(rl):
    r = run(rl, "busybox", "sh", "-c",
            "ls /dev | tr '\\n' ' '; echo; ls /proc/self/fd | tr '\\n' ' '; echo;"
            "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok")
    devs, fds = r.stdout.splitlines()[:2]
    for name in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
                 "fd", "stdin", "stdout", "stderr", "ptmx"):
        assert name in devs.split()
    assert sorted(fds.split()) == ["0", "1", "2", "3"]  # stdio and ls's own dir fd
    assert "null-ok" in r.stdout


def test_network_none_and_host(rl):
    r = run(rl, "busybox", "ls", "/sys/class/net")
    assert r.stdout.split() == ["lo"]
    host_ifaces = sorted(os.listdir("/sys/class/net"))
    r = rl("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net", check=True)
    assert sorted(r.stdout.split()) == host_ifaces


def test_default_network_is_slirp4netns(rl):
    r = rl("run", "--rm", "busybox", "sh", "-c", "ip -4 addr show tap0; cat /etc/resolv.conf",
           check=True)
    assert "10.0.2.100" in r.stdout
    assert "nameserver 10.0.2.3" in r.stdout


def test_unshare_shows_the_user_namespace(rl):
    r = rl("unshare", "cat", "/proc/self/uid_map", check=True)
    first = r.stdout.split("\n")[0].split()
    assert first == ["0", str(os.getuid()), "1"]


def test_unshare_of_a_missing_command_is_one_error_line(rl):
    # the child's failure comes back to rl, which says it (the engine prints nothing)
    r = rl("unshare", "no-such-command-here")
    assert r.returncode == 127
    assert r.stderr == "rl: error: no-such-command-here: command not found\n"


def _host_address() -> str | None:
    import socket

    for name in sorted(os.listdir("/sys/class/net")):
        if name == "lo":
            continue
        try:
            import fcntl
            import struct

            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                raw = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
            return socket.inet_ntoa(raw[20:24])
        except OSError:
            continue
    return None


def test_default_network_reaches_out(rl):
    import http.server
    import threading

    addr = _host_address()
    if addr is None:
        pytest.skip("no non-loopback IPv4 address on this host")

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello from the host\n")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer((addr, 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        r = rl("run", "--rm", "busybox", "wget", "-q", "-O", "-",
               f"http://{addr}:{server.server_port}/", check=True)
        assert r.stdout == "hello from the host\n"
    finally:
        server.shutdown()
        server.server_close()


def test_pid_1_is_the_command_not_the_host_python(rl):
    r = run(rl, "busybox", "sh", "-c", "readlink /proc/1/exe; ls /proc/1/fd | wc -l")
    exe, nfds = r.stdout.split()
    assert exe in ("/bin/sh", "/bin/busybox")  # hard links of one file: either name
    assert int(nfds) == 3


def test_named_volume_persists_and_is_in_use(rl):
    rl("run", "--name", "writer", "--network", "none", "-v", "data1:/data", "busybox", "sh",
       "-c", "echo kept > /data/f", check=True)
    r = run(rl, "-v", "data1:/data:ro", "busybox", "cat", "/data/f")
    assert r.stdout == "kept\n"
    r = rl("volume", "rm", "data1")
    assert r.returncode == 125 and "writer" in r.stderr  # still used by that container
    rl("rm", "writer", check=True)
    rl("volume", "rm", "data1", check=True)


LAYERED_CHECK = (
    "stat -c '%u:%g %a %n' /home/user/secret /tmp /root /bin/busybox;"
    "ls -A /data /olddir | tr '\\n' ' '; echo;"
    "echo written > /data/new.txt; rm /data/keep.txt; chown 1000:1000 /data/new.txt;"
    "stat -c '%u:%g %n' /data/new.txt; ls -A /data")


@pytest.mark.parametrize("backend", ["fuse_overlay", "fuse-overlayfs"])
def test_rootfs_backends_show_the_image(rl, backend):
    """Both backends read the store's layers (.wh. whiteouts, owners and modes in the
    override xattr) and write the container's changes so that a restart sees them."""
    import shutil

    if backend == "fuse-overlayfs":
        from tests.support import users

        users.need(shutil.which("fuse-overlayfs") is not None, "fuse-overlayfs is not installed")
    env = {"RL_ROOTFS_BACKEND": backend}
    r = rl("run", "--name", "fs", "--network", "none", "layered", "sh", "-c", LAYERED_CHECK,
           env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:4] == ["1000:1000 640 /home/user/secret", "0:0 1777 /tmp", "0:0 700 /root",
                         "0:0 755 /bin/busybox"]
    # data/gone.txt whited out, olddir opaque over its lower a and b; no .wh. names shown
    assert lines[4].split() == ["/data:", "keep.txt", "/olddir:", "new"]
    assert lines[5:] == ["1000:1000 /data/new.txt", "new.txt"]
    # the upper dir keeps the write, the deletion and the chown for the next start
    r = rl("start", "-a", "fs", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[4].split() == ["/data:", "new.txt", "/olddir:", "new"]
    rl("rm", "fs", check=True)
    assert rl("ps", "-aq", check=True).stdout == ""
