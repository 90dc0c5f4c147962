"""No Python traceback reaches a user: an unexpected exception in `rl` is one line naming the
log that holds its traceback (rootless/crashlog.py), exit 125; Ctrl-C is exit 130, quiet."""

from __future__ import annotations

import os
import re
import stat

import pytest

from rootless.cli import main as cli_main
from rootless.engine import images as engine_images


@pytest.fixture
def store(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("RL_DEBUG", raising=False)
    return data / "rl"


def run_main(args) -> int:
    with pytest.raises(SystemExit) as exc:
        cli_main.main(args)
    return exc.value.code


def boom(*args, **kwargs):
    raise ZeroDivisionError("boom in the engine")


def test_unexpected_exception_is_one_line_and_logged(store, monkeypatch, capsys):
    monkeypatch.setattr(engine_images, "list_images", boom)
    assert run_main(["images"]) == 125
    out, err = capsys.readouterr()
    assert out == ""
    log = store / "rl.log"
    assert err == ("rl: error: internal error: ZeroDivisionError: boom in the engine "
                   f"(details in {log})\n")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text
    assert "in boom" in text and "ZeroDivisionError: boom in the engine" in text
    assert re.search(r"^--- \S+ pid \d+ rl images$", text, re.M)
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o700
    # a second one is appended
    assert run_main(["images"]) == 125
    assert log.read_text().count("Traceback") == 2


def test_rl_debug_prints_the_traceback_too(store, monkeypatch, capsys):
    monkeypatch.setattr(engine_images, "list_images", boom)
    monkeypatch.setenv("RL_DEBUG", "1")
    assert run_main(["images"]) == 125
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip("\n").splitlines()[-1].startswith("rl: error: internal error: ")


def test_keyboard_interrupt_is_130_and_quiet(store, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine_images, "list_images", interrupted)
    assert run_main(["images"]) == 130
    assert capsys.readouterr().err.strip() == ""  # click ends the ^C line, nothing more
    assert not (store / "rl.log").exists()


def test_an_error_message_carries_no_escape_sequence(store, monkeypatch, capsys):
    """Error text often quotes what a registry or an image wrote."""
    from rootless.errors import RlError

    def hostile(*args, **kwargs):
        raise RlError("registry says \x1b]0;pwned\x07 hello")

    monkeypatch.setattr(engine_images, "list_images", hostile)
    assert run_main(["images"]) == 125
    assert capsys.readouterr().err == "rl: error: registry says \\x1b]0;pwned\\x07 hello\n"
