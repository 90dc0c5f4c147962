"""`rl run` flags: --tmpfs options, --volumes-from, --ip/--mac-address, --log-driver and
--log-opt (rotation), --platform; as the test user, with real containers."""

from __future__ import annotations

import json

import pytest

from tests.runtime.test_runflags import refused, run_out


def _mount_line(out: str, target: str) -> list[str]:
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[1] == target:
            return parts[3].split(",")
    raise AssertionError(f"{target} not mounted:\n{out}")


def test_tmpfs_options_show_in_the_mount(rl):
    out = run_out(rl, "--tmpfs", "/scratch:size=8m,mode=0750,uid=1000,gid=100,exec",
                  "--tmpfs", "/plain", "busybox", "sh", "-c",
                  "cat /proc/self/mounts; stat -c '%a %u %g' /scratch; stat -c 'plain %a' /plain; "
                  "cp /bin/busybox /scratch/true && /scratch/true && echo ran")
    opts = _mount_line(out, "/scratch")
    assert "size=8192k" in opts and "mode=750" in opts
    # (tmpfs lists its uid/gid as the host sees them: the owner shows in stat below)
    assert any(o.startswith("uid=") for o in opts) and any(o.startswith("gid=") for o in opts)
    assert "noexec" not in opts and "nosuid" in opts and "nodev" in opts
    assert "750 1000 100" in out.splitlines()
    assert out.splitlines()[-1] == "ran"
    plain = _mount_line(out, "/plain")
    assert {"noexec", "nosuid", "nodev"} <= set(plain)
    assert "plain 1777" in out.splitlines()


def test_volumes_from_sees_the_volume(rl, tmp_path):
    (tmp_path / "bound").mkdir()
    (tmp_path / "bound" / "f").write_text("from the host\n")
    rl("run", "--name", "src", "-v", "vfdata:/data", "-v", f"{tmp_path / 'bound'}:/b:ro",
       "busybox", "sh", "-c", "echo hello > /data/x", check=True)
    out = run_out(rl, "--volumes-from", "src", "busybox", "sh", "-c",
                  "cat /data/x /b/f; touch /b/y 2>/dev/null || echo b-ro")
    assert out.splitlines() == ["hello", "from the host", "b-ro"]
    out = run_out(rl, "--volumes-from", "src:ro", "busybox", "sh", "-c",
                  "touch /data/y 2>/dev/null || echo data-ro")
    assert out.strip() == "data-ro"
    # an explicit -v for the same target wins
    out = run_out(rl, "--volumes-from", "src", "-v", "other:/data", "busybox", "ls", "/data")
    assert out.strip() == ""
    rl("rm", "src", check=True)
    rl("volume", "rm", "vfdata", "other", check=True)


def test_ip_and_mac_address_on_a_user_network(rl):
    rl("network", "create", "--subnet", "10.91.7.0/24", "ipnet", check=True)
    try:
        out = run_out(rl, "--network", "ipnet", "--ip", "10.91.7.77", "--mac-address",
                      "02:42:0a:5b:07:4d", "busybox", "ip", "addr", "show", "eth0")
        assert "inet 10.91.7.77/24" in out
        assert "link/ether 02:42:0a:5b:07:4d" in out
        refused(rl, ["--network", "ipnet", "--ip", "10.92.0.5"], "is not a free host address")
    finally:
        rl("network", "rm", "ipnet")


def test_mac_address_on_slirp4netns(rl):
    out = run_out(rl, "--mac-address", "02:00:00:ab:cd:ef", "busybox", "cat",
                  "/sys/class/net/tap0/address")
    assert out.strip() == "02:00:00:ab:cd:ef"


def test_log_opt_max_size_rotates_and_logs_reads_all(rl):
    rl("run", "--name", "chatty", "--log-opt", "max-size=10k", "--log-opt", "max-file=3",
       "busybox", "sh", "-c", "i=0; while [ $i -lt 1000 ]; do echo line-$i; i=$((i+1)); done",
       check=True)
    info = json.loads(rl("inspect", "chatty", check=True).stdout)[0]
    assert info["HostConfig"]["LogConfig"] == {"Type": "json-file",
                                               "Config": {"max-size": "10k", "max-file": "3"}}
    logdir = info["LogPath"].rsplit("/", 1)[0]
    names = sorted(p.name for p in __import__("pathlib").Path(logdir).iterdir()
                   if p.name.startswith("ctr.log"))
    assert names == ["ctr.log", "ctr.log.1", "ctr.log.2"]  # max-file=3: two rotated kept
    lines = rl("logs", "chatty", check=True).stdout.splitlines()
    # the oldest records went with the file rotated out; what is kept is in order
    assert lines == [f"line-{i}" for i in range(1000 - len(lines), 1000)]
    assert 400 < len(lines) < 1000


def test_log_max_file_one_truncates(rl):
    rl("run", "--name", "trunc", "--log-opt", "max-size=2k", "busybox", "sh", "-c",
       "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done", check=True)
    lines = rl("logs", "trunc", check=True).stdout.splitlines()
    assert lines and lines[-1] == "line-299" and len(lines) < 300


def test_log_driver_none(rl):
    rl("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "hi", check=True)
    r = rl("logs", "quiet")
    assert r.returncode == 1
    assert "configured logging driver does not support reading" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--tmpfs", "/t:size=lots"], "invalid --tmpfs size 'lots'"),
    (["--tmpfs", "/t:mode=999"], "invalid tmpfs option 'mode=999'"),
    (["--tmpfs", "/t:bogus"], "invalid tmpfs option 'bogus'"),
    (["--volumes-from", "nosuch"], "no such container: nosuch"),
    (["--volumes-from", "x:rx"], "invalid --volumes-from 'x:rx'"),
    (["--ip", "10.0.0.5"], "user specified IP address is supported on user defined networks"),
    (["--ip", "banana"], "invalid --ip 'banana'"),
    (["--ip6", "fd00::5"], "--ip6 cannot be given"),
    (["--mac-address", "zz:00:00:00:00:00"], "invalid --mac-address"),
    (["--mac-address", "01:00:00:00:00:01"], "is a multicast address"),
    (["--network", "none", "--mac-address", "02:00:00:00:00:01"],
     "--mac-address cannot be used with --network none"),
    (["--log-driver", "syslog"], "logging driver 'syslog' is not supported"),
    (["--log-opt", "max-size=big"], "invalid --log-opt max-size 'big'"),
    (["--log-opt", "max-file=0"], "invalid --log-opt max-file='0'"),
    (["--log-opt", "max-file=2"], "--log-opt max-file needs max-size"),
    (["--log-opt", "compress=true"], "unknown log opt 'compress'"),
    (["--log-driver", "none", "--log-opt", "max-size=1m"], "is not valid for the none log"),
    (["--platform", "linux"], "invalid platform 'linux'"),
    (["--platform", "windows/amd64"], "rl runs linux containers only"),
])
def test_bad_values_are_refused(rl, args, message):
    refused(rl, args, message)


def test_foreign_platform_refused_without_an_emulator(rl):
    from rootless.engine.buildmounts import emulator_for

    if emulator_for("s390x") is not None:
        pytest.skip("this host has an s390x emulator")
    refused(rl, ["--platform", "linux/s390x"], "has no emulator for s390x")


def test_logs_follow_reads_across_rotations(rl):
    rl("run", "-d", "--name", "rot", "--log-opt", "max-size=1k", "--log-opt", "max-file=1000",
       "busybox", "sh", "-c",
       "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); [ $((i % 50)) = 0 ] && "
       "sleep 0.2; done", check=True)
    out = rl("logs", "-f", "rot", check=True, timeout=120).stdout.splitlines()
    assert out == [f"line-{i}" for i in range(300)]
