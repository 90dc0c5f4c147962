"""`rl run -it` and `rl exec -it` through a real pty (pexpect)."""

from __future__ import annotations

import time

import pexpect


def spawn(rl, *args):
    argv = rl.argv(*args)
    child = pexpect.spawn(argv[0], argv[1:], env=rl.env, encoding="utf-8", timeout=15,
                          dimensions=(30, 100))
    return child


def test_run_it_has_a_tty_with_size_and_ctrl_c(rl):
    child = spawn(rl, "run", "-it", "--rm", "--network", "none", "busybox", "sh")
    try:
        child.expect("# ")
        child.sendline("tty; stty size; echo $((6*7))")
        child.expect("/dev/pts/0")
        child.expect("30 100")
        child.expect("42")
        child.setwinsize(40, 120)
        child.sendline("stty size")
        child.expect("40 120")
        child.sendline("sleep 100")
        child.expect("sleep 100")
        time.sleep(0.5)  # let the shell start it: a ^C while it reads the line is its own
        child.sendcontrol("c")  # reaches the container's foreground process
        child.expect("# ")
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 3
    finally:
        if child.isalive():
            child.terminate(force=True)


def test_run_i_forwards_stdin(rl):
    r = rl("run", "-i", "--rm", "--network", "none", "busybox", "sh", "-c", "tr a-z A-Z",
           input="hello\n", check=True)
    assert r.stdout == "HELLO\n"
    r = rl("run", "--rm", "--network", "none", "busybox", "cat", input="ignored\n", check=True)
    assert r.stdout == ""


def test_exec_it(rl):
    rl("run", "-d", "--name", "t", "--network", "none", "busybox", "sleep", "300", check=True)
    child = spawn(rl, "exec", "-it", "t", "sh")
    try:
        child.expect("# ")
        child.sendline("tty; echo $((7*6))")
        child.expect("/dev/pts/")
        child.expect("42")
        child.sendline("exit 4")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 4
    finally:
        if child.isalive():
            child.terminate(force=True)
