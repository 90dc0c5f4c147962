"""The Dockerfile parser against the behaviour Docker documents (Dockerfile reference:
parser directives, escape, continuations, comments, exec/shell forms, heredocs, each
instruction) and the errors a user sees, each naming the file and line."""

from __future__ import annotations

import re
import textwrap

import pytest

from rootless.build import dockerfile
from rootless.build import instructions as ins
from rootless.errors import RlError
from tests.build.helpers import body, one, parse

# --------------------------------------------------------------------------- forms

# (Dockerfile body after "FROM busybox", expected command tuple, shell form?)
COMMAND_FORMS = [
    ('RUN echo hello', ("echo hello",), True),
    ('RUN ["/bin/bash", "-c", "echo hello"]', ("/bin/bash", "-c", "echo hello"), False),
    ('RUN [ "echo", "hi" ]', ("echo", "hi"), False),
    # JSON escapes are JSON's: the reference's Windows example.
    ('RUN ["c:\\\\windows\\\\system32\\\\tasklist.exe"]', ("c:\\windows\\system32\\tasklist.exe",), False),
    # Not valid JSON (\w is no JSON escape): Docker falls back to the shell form.
    ('RUN ["c:\\windows\\system32\\tasklist.exe"]', ('["c:\\windows\\system32\\tasklist.exe"]',), True),
    ("RUN ['single', 'quotes']", ("['single', 'quotes']",), True),
    ('RUN ["unterminated"', ('["unterminated"',), True),
    ('RUN ["a"] trailing', ('["a"] trailing',), True),
    ('CMD echo "This is a test." | wc -', ('echo "This is a test." | wc -',), True),
    ('CMD ["/usr/bin/wc","--help"]', ("/usr/bin/wc", "--help"), False),
    ("CMD []", (), False),
    ("CMD", (), True),
    ('ENTRYPOINT ["top", "-b"]', ("top", "-b"), False),
    ("ENTRYPOINT exec top -b", ("exec top -b",), True),
    ("run   echo   spaced  ", ("echo   spaced",), True),  # keywords are case-insensitive
    ('RUN [ ]', (), False),
]


@pytest.mark.parametrize(("text", "command", "shell_form"), COMMAND_FORMS)
def test_exec_and_shell_forms(text, command, shell_form):
    inst = one(text)
    assert inst.command == command
    assert inst.shell_form is shell_form


def test_json_array_with_a_non_string_is_an_error():
    with pytest.raises(RlError, match=r"^Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"):
        body('CMD ["echo", 1]')


def test_shell_needs_json():
    assert one('SHELL ["powershell", "-command"]').shell == ("powershell", "-command")
    with pytest.raises(RlError, match=r"^Dockerfile:2: SHELL requires the arguments to be in JSON form"):
        body("SHELL /bin/sh -c")
    with pytest.raises(RlError, match="SHELL requires at least one argument"):
        body("SHELL []")


# --------------------------------------------------------------------------- lines

CONTINUATIONS = [
    # The reference's example: the continuation joins without adding a space.
    ("RUN /bin/bash -c 'source $HOME/.bashrc && \\\necho $HOME'",
     "/bin/bash -c 'source $HOME/.bashrc && echo $HOME'"),
    # Spaces and tabs after the backslash are allowed.
    ("RUN echo a \\  \t\n  b", "echo a   b"),
    # Comment lines inside a continuation are dropped (also indented ones).
    ("RUN echo hello \\\n# comment\nworld", "echo hello world"),
    ("RUN apt-get update && \\\n    # install\n    apt-get install -y x", "apt-get update &&     apt-get install -y x"),
    # Empty continuation lines are skipped (Docker warns).
    ("RUN echo hello \\\n\nworld", "echo hello world"),
    ("RUN echo hello \\\n   \t\nworld", "echo hello world"),
    # An escaped backslash at the end is a literal backslash, not a continuation.
    ("RUN echo foo\\\\\nRUN x", "echo foo\\\\"),
    # CRLF line endings.
    ("RUN echo a \\\r\n  b\r\n", "echo a   b"),
    # A continuation at the end of the file ends the instruction.
    ("RUN echo end \\", "echo end"),
    # A lone backslash line continues too.
    ("RUN echo a\\\n\\\nb", "echo ab"),
]


@pytest.mark.parametrize(("text", "expected"), CONTINUATIONS)
def test_line_continuations(text, expected):
    inst = body(text, dedent=False)[0]
    assert inst.command == (expected,)


def test_continuation_lines_are_numbered_from_the_first():
    df = parse("FROM busybox\nRUN a \\\n  b \\\n  c\nRUN d\n")
    run1, run2 = df.stages[0].instructions
    assert (run1.line, run1.end_line) == (2, 4)
    assert (run2.line, run2.end_line) == (5, 5)


def test_empty_continuation_line_warns():
    df = parse("FROM busybox\nRUN a \\\n\n b\n")
    assert any("empty continuation line" in w for w in df.warnings)


def test_comments_and_blank_lines_and_leading_whitespace():
    text = ("FROM busybox\n"
            "# a comment\n"
            "\n"
            "        # indented comment\n"
            "    RUN echo hello\n"
            "RUN echo world # not a comment\n")
    cmds = [i.command for i in dockerfile.parse(text).stages[0].instructions]
    assert cmds == [("echo hello",), ("echo world # not a comment",)]


def test_byte_order_mark_is_ignored():
    df = dockerfile.parse(b"\xef\xbb\xbfFROM busybox\nRUN x\n")
    assert df.stages[0].base == "busybox"


# --------------------------------------------------------------------------- directives

def test_escape_backtick_windows_example():
    # The reference's example, with escape=` the backslashes are plain characters.
    df = parse("""\
        # escape=`

        FROM microsoft/nanoserver
        COPY testfile.txt c:\\
        RUN dir c:\\
    """)
    copy, run = df.stages[0].instructions
    assert df.escape == "`"
    assert copy.sources == ("testfile.txt",) and copy.dest == "c:\\"
    assert run.command == ("dir c:\\",)


def test_without_escape_directive_windows_paths_continue():
    # Same file without the directive: the trailing backslashes continue the lines, so
    # COPY swallows the RUN line (what the reference warns about).
    df = parse("""\
        FROM microsoft/nanoserver
        COPY testfile.txt c:\\
        RUN dir c:\\
    """)
    (copy,) = df.stages[0].instructions
    assert copy.sources == ("testfile.txt", "c:RUN", "dir")
    assert copy.dest == "c:"


def test_backtick_continuation_and_escaping():
    df = parse("# escape=`\nFROM w\nRUN Get-Item `\n  -Path C:\\x\nENV A=a` b\n")
    run, env = df.stages[0].instructions
    assert run.command == ("Get-Item   -Path C:\\x",)
    assert env.expand({}).pairs == (("A", "a b"),)


@pytest.mark.parametrize("line", [
    "#escape=`", "# escape =`", "#\tescape= `", "# escape = `", "#\t  eScApE=`", "# ESCAPE=`  ",
])
def test_directive_whitespace_and_case(line):
    assert dockerfile.parse(f"{line}\nFROM w\n").escape == "`"


@pytest.mark.parametrize("text", [
    # Line continuation is not supported in directives: both lines are comments.
    "# esc \\\n# ape=`\nFROM w\n",
    # After an instruction it is a comment.
    "FROM w\n# escape=`\n",
    # After a comment it is a comment.
    "# About my dockerfile\n# escape=`\nFROM w\n",
    # An unknown directive ends the directives (it is a comment, and so is what follows).
    "# unknowndirective=value\n# escape=`\nFROM w\n",
    # A blank line ends them too.
    "\n# escape=`\nFROM w\n",
])
def test_directive_only_at_the_top(text):
    df = dockerfile.parse(text)
    assert df.escape == "\\"
    assert "escape" not in df.directives


def test_syntax_and_escape_directives_together():
    df = parse("# syntax=docker/dockerfile:1.7\n# escape=`\nFROM w\n")
    assert df.syntax == "docker/dockerfile:1.7"
    assert df.escape == "`"


def test_directive_errors():
    with pytest.raises(RlError, match=r"^Dockerfile:2: only one escape parser directive can be used"):
        dockerfile.parse("# escape=\\\n# escape=`\nFROM w\n")
    with pytest.raises(RlError, match=r"^Dockerfile:1: invalid escape token 'x' does not match ` or \\"):
        dockerfile.parse("# escape=x\nFROM w\n")


# --------------------------------------------------------------------------- heredocs

def test_heredoc_run_with_program():
    run = one("""\
        RUN <<EOT bash
          set -ex
          apt-get update
        EOT
    """)
    assert run.command == ("<<EOT bash",)
    (doc,) = run.heredocs
    assert doc.name == "EOT" and doc.expand and not doc.chomp
    assert doc.content == "  set -ex\n  apt-get update\n"
    assert run.shell_script() == "<<EOT bash\n  set -ex\n  apt-get update\nEOT"
    assert (run.line, run.end_line) == (2, 5)


def test_heredoc_run_alone_is_the_script():
    run = one("RUN <<EOT\n  mkdir -p foo/bar\nEOT\n")
    assert run.shell_script() == "  mkdir -p foo/bar\n"
    assert run.shebang_heredoc is None


def test_heredoc_shebang():
    run = one('RUN <<EOT\n#!/usr/bin/env python\nprint("hello world")\nEOT\n')
    assert run.shebang_heredoc is not None
    assert run.shebang_heredoc.text.startswith("#!/usr/bin/env python")


def test_two_heredocs_on_one_line():
    text = "RUN <<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\nRUN next\n"
    run, nxt = body(text, dedent=False)
    assert [d.name for d in run.heredocs] == ["FILE1", "FILE2"]
    assert [d.content for d in run.heredocs] == ["I am\nfirst\n", "I am\nsecond\n"]
    assert nxt.command == ("next",) and nxt.line == 9


def test_heredoc_quoted_delimiters_disable_expansion():
    for delim, expand in [("EOF", True), ('"EOF"', False), ("'EOF'", False), ('E"O"F', False)]:
        run = one(f"RUN cat <<{delim}\n$HOME\nEOF\n")
        assert run.heredocs[0].name == "EOF"
        assert run.heredocs[0].expand is expand, delim


def test_heredoc_chomp_strips_leading_tabs():
    copy = one("COPY <<-EOT /script.sh\n\t\techo \"hello ${FOO}\"\n\tEOT\n")
    (content,) = copy.contents
    assert content.data == 'echo "hello ${FOO}"\n'
    assert copy.expand({"FOO": "bar"}).contents[0].data == 'echo "hello bar"\n'


def test_heredoc_copy_quoted_not_expanded():
    copy = one('COPY <<"EOT" /script.sh\necho "hello ${FOO}"\nEOT\n')
    assert copy.contents[0].expand is False
    assert copy.expand({"FOO": "bar"}).contents[0].data == 'echo "hello ${FOO}"\n'


def test_heredoc_copy_several_sources():
    copy = one("COPY <<robots.txt <<humans.txt /usr/share/nginx/html/\n(robots)\nrobots.txt\n(humans)\nhumans.txt\n")
    assert [c.path for c in copy.contents] == ["robots.txt", "humans.txt"]
    assert [c.data for c in copy.contents] == ["(robots)\n", "(humans)\n"]
    assert copy.sources == () and copy.dest == "/usr/share/nginx/html/"


def test_heredoc_mixed_with_files():
    copy = one("COPY a.txt <<EOF b.txt /dst/\nx\nEOF\n")
    assert copy.sources == ("a.txt", "b.txt")
    assert copy.contents[0].data == "x\n"


def test_heredoc_terminator_must_match_exactly():
    run = one("RUN cat <<EOF\n EOF\nEOF \nEOF\n")
    assert run.heredocs[0].content == " EOF\nEOF \n"


def test_heredoc_content_keeps_comments_and_backslashes():
    run = one("RUN python3 <<EOF\n# not a Dockerfile comment \\\nprint(1)\nEOF\n")
    assert run.heredocs[0].content == "# not a Dockerfile comment \\\nprint(1)\n"


def test_heredoc_not_read_for_other_instructions_or_json():
    df = parse("FROM w\nENV A=<<EOF\nRUN [\"cat\", \"<<EOF\"]\n")
    env, run = df.stages[0].instructions
    assert env.pairs == (("A", "<<EOF"),)
    assert run.command == ("cat", "<<EOF") and run.heredocs == ()


def test_heredoc_in_onbuild():
    ob = one("ONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert ob.trigger == "RUN"
    assert ob.expression == "RUN <<EOF\necho hi\nEOF"


def test_unterminated_heredoc():
    with pytest.raises(RlError, match=r"^Dockerfile:3: unterminated heredoc"):
        dockerfile.parse("FROM w\nRUN true\nRUN <<EOF\nnever ends\n")


def test_heredoc_as_destination_is_an_error():
    with pytest.raises(RlError, match="COPY cannot accept a heredoc as a destination"):
        body("COPY a <<EOF\nx\nEOF\n")


# --------------------------------------------------------------------------- instructions

def test_from_forms():
    df = parse("""\
        ARG CODE_VERSION=latest
        FROM base:${CODE_VERSION}
        FROM --platform=$BUILDPLATFORM golang:1.22 AS Build
        FROM build as final
    """)
    a, b, c = df.stages
    assert [g.args for g in df.global_args] == [(("CODE_VERSION", "latest"),)]
    assert a.base == "base:${CODE_VERSION}" and a.name is None
    assert c.from_.base == "build"
    assert b.name == "build" and b.from_.platform == "$BUILDPLATFORM"  # names are lower-cased
    assert [s.index for s in df.stages] == [0, 1, 2]


def test_env_forms():
    env = one('ENV MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog MY_CAT=fluffy')
    assert env.pairs == (("MY_NAME", '"John Doe"'), ("MY_DOG", "Rex\\ The\\ Dog"), ("MY_CAT", "fluffy"))
    assert env.expand({}).pairs == (("MY_NAME", "John Doe"), ("MY_DOG", "Rex The Dog"), ("MY_CAT", "fluffy"))
    legacy = one("ENV MY_VAR my-value with spaces")
    assert legacy.pairs == (("MY_VAR", "my-value with spaces"),)
    assert one('ENV A=""').expand({}).pairs == (("A", ""),)
    assert one("ENV A=").pairs == (("A", ""),)


def test_env_sees_the_environment_before_it():
    # The reference's example: def gets the old abc, ghi the new one.
    df = parse("FROM w\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    env: dict[str, str] = {}
    for inst in df.stages[0].instructions:
        env.update(inst.expand(env).pairs)
    assert env == {"abc": "bye", "def": "hello", "ghi": "bye"}


def test_label_forms():
    labels = body("""\
        LABEL "com.example.vendor"="ACME Incorporated"
        LABEL com.example.label-with-value="foo"
        LABEL version="1.0"
        LABEL description="This text illustrates \\
        that label-values can span multiple lines."
        LABEL multi.label1="value1" multi.label2="value2" other="value3"
    """)
    pairs = [p for lab in labels for p in lab.expand({}).pairs]
    assert pairs == [
        ("com.example.vendor", "ACME Incorporated"),
        ("com.example.label-with-value", "foo"),
        ("version", "1.0"),
        ("description", "This text illustrates that label-values can span multiple lines."),
        ("multi.label1", "value1"), ("multi.label2", "value2"), ("other", "value3"),
    ]


def test_arg_forms():
    arg = one('ARG user1 buildno=1 empty= quoted="a b"')
    assert arg.args == (("user1", None), ("buildno", "1"), ("empty", ""), ("quoted", '"a b"'))
    assert arg.expand({}).args[3] == ("quoted", "a b")


def test_expose_user_workdir_stopsignal_volume_maintainer():
    exp, user, wd, sig, vol1, vol2, mnt = body("""\
        EXPOSE 80/udp 443 80/tcp
        USER patrick:staff
        WORKDIR /path/to/workdir
        STOPSIGNAL SIGKILL
        VOLUME ["/data", "/other"]
        VOLUME /var/log /var/db
        MAINTAINER Jane Doe <jane@example.com>
    """)
    assert exp.ports == ("443", "80/tcp", "80/udp")  # Docker sorts them
    assert user.user == "patrick:staff"
    assert wd.path == "/path/to/workdir"
    assert sig.signal == "SIGKILL"
    assert vol1.paths == ("/data", "/other") and vol2.paths == ("/var/log", "/var/db")
    assert mnt.maintainer == "Jane Doe <jane@example.com>"


def test_healthcheck():
    hc = one("HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --start-interval=500ms "
             "--retries=3 CMD curl -f http://localhost/ || exit 1")
    assert hc.test == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")
    assert (hc.interval, hc.timeout, hc.start_period, hc.start_interval, hc.retries) == (300, 3, 90, 0.5, 3)
    assert one('HEALTHCHECK CMD ["/bin/check", "-q"]').test == ("CMD", "/bin/check", "-q")
    none = one("HEALTHCHECK NONE")
    assert none.test == ("NONE",) and none.interval is None


@pytest.mark.parametrize(("text", "message"), [
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK RUN x", 'Unknown type "RUN" in HEALTHCHECK'),
    ("HEALTHCHECK --interval=5x CMD true", 'invalid --interval duration "5x"'),
    ("HEALTHCHECK --interval=1us CMD true", 'Interval "interval" cannot be less than 1ms'),
    ("HEALTHCHECK --retries=-1 CMD true", "--retries cannot be negative"),
    ("HEALTHCHECK --bogus=1 CMD true", "unknown flag: --bogus"),
])
def test_healthcheck_errors(text, message):
    with pytest.raises(RlError, match=r"^Dockerfile:2: " + re.escape(message)):
        body(text)


def test_onbuild():
    add, run = body("ONBUILD ADD . /app/src\nONBUILD RUN /usr/local/bin/python-build --dir /app/src\n")
    assert add.expression == "ADD . /app/src" and add.trigger == "ADD"
    assert run.expression == "RUN /usr/local/bin/python-build --dir /app/src"
    # ONBUILD is not expanded.
    assert one("ONBUILD RUN echo $HOME").expand({"HOME": "/x"}).expression == "RUN echo $HOME"


def test_copy_and_add_flags():
    copy = one("COPY --from=build --chown=55:mygroup --chmod=644 --link files* /somedir/")
    assert copy.from_ == "build" and copy.chown == "55:mygroup" and copy.chmod == "644"
    assert copy.link is True and copy.sources == ("files*",) and copy.dest == "/somedir/"
    add = one("ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d "
              "https://mirrors.edge.kernel.org/pub/linux/kernel/Historic/linux-0.01.tar.gz /")
    assert add.checksum.startswith("sha256:2445") and add.sources[0].startswith("https://")
    assert one('COPY ["a b.txt", "/dst dir/"]').sources == ("a b.txt",)
    assert one("COPY --link=false a b").link is False
    assert one("COPY --exclude=*.md --exclude=*.txt . /app").excludes == ("*.md", "*.txt")
    assert one("COPY --chown='1:2' a b").chown == "1:2"


def test_run_flags_kept_raw():
    run = one("RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none "
              "pip install x")
    assert run.mounts == ("type=cache,target=/root/.cache", "type=secret,id=tok")
    assert run.network == "none" and run.command == ("pip install x",)
    assert one("RUN -- --notaflag").command == ("--notaflag",)


# --------------------------------------------------------------------------- substitution

def test_substitution_where_docker_applies_it():
    env = {"FOO": "/bar", "U": "app", "P": "8080 9090", "SIG": "SIGTERM", "V": "/data"}
    insts = body("""\
        WORKDIR ${FOO}
        ADD . $FOO
        COPY \\$FOO /quux
        USER $U
        EXPOSE $P 53/udp
        STOPSIGNAL $SIG
        VOLUME $V ${FOO}/x
        LABEL where=$FOO
        COPY --chown=$U:$U --chmod=${M:-755} a $FOO/
        RUN echo $FOO
        CMD echo $FOO
        ENTRYPOINT ["echo", "$FOO"]
        ONBUILD RUN echo $FOO
        HEALTHCHECK CMD echo $FOO
        SHELL ["/bin/sh", "-c", "$FOO"]
        MAINTAINER $U
    """)
    out = [i.expand(env) for i in insts]
    assert out[0].path == "/bar"
    assert out[1].sources == (".",) and out[1].dest == "/bar"
    assert out[2].sources == ("$FOO",) and out[2].dest == "/quux"
    assert out[3].user == "app"
    assert out[4].ports == ("8080", "9090", "53/udp")
    assert out[5].signal == "SIGTERM"
    assert out[6].paths == ("/data", "/bar/x")
    assert out[7].pairs == (("where", "/bar"),)
    assert (out[8].chown, out[8].chmod, out[8].dest) == ("app:app", "755", "/bar/")
    # not expanded: RUN, CMD, ENTRYPOINT, ONBUILD, HEALTHCHECK, SHELL, MAINTAINER
    for before, after in zip(insts[9:], out[9:], strict=True):
        assert before == after



def test_run_mount_values_are_expanded_not_the_command():
    run = one('RUN --mount=type=cache,id=$CID,target=${DIR}/x,sharing=locked echo $CID')
    out = run.expand({"CID": "pip", "DIR": "/root"})
    assert out.mounts == ("type=cache,id=pip,target=/root/x,sharing=locked",)
    assert out.command == run.command


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize(("text", "message"), [
    ("FROM busybox\nRUN true\n\n\n\n\nFORM alpine\n", "Dockerfile:7: unknown instruction: FORM"),
    ("FROM busybox\nCOPY onlyone\n", "Dockerfile:2: COPY requires at least two arguments"),
    ("FROM busybox\nADD x\n", "Dockerfile:2: ADD requires at least two arguments"),
    ("FROM a b\n", "Dockerfile:1: FROM requires either one or three arguments"),
    ("FROM a AS 1x\n", "Dockerfile:1: invalid name for build stage: \"1x\""),
    ("FROM a\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
    ("FROM a\nENV onlyname\n", "Dockerfile:2: ENV must have two arguments"),
    ("FROM a\nENV a=1 b\n", "Dockerfile:2: Syntax error - can't find = in \"b\""),
    ("FROM a\nLABEL =x\n", "Dockerfile:2: LABEL names can not be blank"),
    ("FROM a\nARG =x\n", "Dockerfile:2: ARG names can not be blank"),
    ("FROM a\nARG\n", "Dockerfile:2: ARG requires at least one argument"),
    ("FROM a\nCOPY --foo=bar a b\n", "Dockerfile:2: unknown flag: --foo"),
    ("FROM a\nCOPY --from a b\n", "Dockerfile:2: missing a value on flag: --from"),
    # BuildKit's BFlags: `--flag value` (two words) is the flag without its value
    ("FROM a\nRUN --network host echo\n", "Dockerfile:2: missing a value on flag: --network"),
    ("FROM a\nRUN --device=/dev/kvm echo\n", "Dockerfile:2: RUN --device is not supported"),
    ("FROM a\nCOPY --link=maybe a b\n", "Dockerfile:2: expecting boolean value for flag --link"),
    ("FROM a\nCOPY --chown=1 --chown=2 a b\n", "Dockerfile:2: duplicate flag specified: --chown"),
    ("FROM a\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument"),
    ("FROM a\nUSER\n", "Dockerfile:2: USER requires exactly one argument"),
    ("FROM a\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument"),
    ("FROM a\nVOLUME []\n", "Dockerfile:2: VOLUME requires at least one argument"),
    ("FROM a\nRUN\n", "Dockerfile:2: RUN requires at least one argument"),
    ("FROM a\nONBUILD\n", "Dockerfile:2: ONBUILD requires at least one argument"),
    ("FROM a\nONBUILD ONBUILD RUN x\n", "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM a\nONBUILD FROM x\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nONBUILD MAINTAINER x\n", "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("RUN echo\nFROM a\n", "Dockerfile:1: RUN before any FROM: no build stage in current context"),
    ("ARG A=1\nENV B=2\nFROM a\n", "Dockerfile:2: ENV before any FROM"),
    ("ARG A=1\n", "Dockerfile:1: no FROM instruction"),
    ("", "Dockerfile:1: file with no instructions"),
    ("# only\n# comments\n\n", "Dockerfile:3: file with no instructions"),
    ("FROM a\nRUN a \\\n  b\nRUN c \\\n  d\nBOGUS \\\n  x\n", "Dockerfile:6: unknown instruction: BOGUS"),
    ("FROM a\nfoo bar\n", "Dockerfile:2: unknown instruction: foo"),
    ("FROM a\nMAINTAINER --boo joe@example.com\n", "Dockerfile:2: unknown flag: --boo"),
    ("FROM a\nCOPY\t\n\t\tquux \\\n      bar\n", "Dockerfile:2: COPY requires at least two arguments"),
    ("FROM a\nMAINTAINER\n", "Dockerfile:2: MAINTAINER requires exactly one argument"),
    ("FROM a\nSTOPSIGNAL\n", "Dockerfile:2: STOPSIGNAL requires exactly one argument"),
    ("FROM a\nLABEL\n", "Dockerfile:2: LABEL requires at least one argument"),
])
def test_errors_name_file_and_line(text, message):
    with pytest.raises(RlError) as exc:
        dockerfile.parse(text)
    assert exc.value.message.startswith(message), exc.value.message
    assert "\n" not in str(exc.value)


def test_unknown_instruction_suggests():
    with pytest.raises(RlError) as exc:
        dockerfile.parse("FROM a\nRUN true\nCOPPY a b\n")
    assert exc.value.message == "Dockerfile:3: unknown instruction: COPPY"
    assert exc.value.fix == "did you mean COPY?"


def test_errors_use_the_given_file_name(tmp_path):
    p = tmp_path / "app.Dockerfile"
    p.write_text("FROM a\nFORM b\n")
    with pytest.raises(RlError, match=r"^app\.Dockerfile:2: unknown instruction: FORM"):
        dockerfile.parse_file(p)
    with pytest.raises(RlError, match="no such Dockerfile"):
        dockerfile.parse_file(tmp_path / "missing")


def test_invalid_utf8():
    with pytest.raises(RlError, match=r"^Dockerfile:2: not valid UTF-8"):
        dockerfile.parse(b"FROM a\nRUN \xff\n")


# --------------------------------------------------------------------------- resolve

PLAT = {"BUILDPLATFORM": "linux/amd64", "TARGETPLATFORM": "linux/amd64", "TARGETARCH": "amd64"}


def test_resolve_global_args_in_from():
    df = parse("""\
        ARG  CODE_VERSION=latest
        FROM base:${CODE_VERSION}
        CMD  /code/run-app

        FROM extras:${CODE_VERSION}
        CMD  /code/run-extras
    """)
    plan = dockerfile.resolve(df, platform_args=PLAT)
    assert [s.base for s in plan.stages] == ["base:latest", "extras:latest"]
    plan = dockerfile.resolve(df, {"CODE_VERSION": "1.2"}, platform_args=PLAT)
    assert [s.base for s in plan.stages] == ["base:1.2", "extras:1.2"]
    assert plan.order == [1]  # the last stage needs no other


def test_resolve_platform_args_and_global_arg_chain():
    df = parse("ARG A=x\nARG B=${A}-y\nFROM --platform=$BUILDPLATFORM img:$B\n")
    plan = dockerfile.resolve(df, platform_args=PLAT)
    assert plan.stages[0].base == "img:x-y" and plan.stages[0].platform == "linux/amd64"
    assert plan.global_args == {"A": "x", "B": "x-y"}


def test_stage_arg_inherits_global_value():
    # The reference's example: ARG VERSION inside the stage takes the global default.
    df = parse("ARG VERSION=latest\nFROM busybox:$VERSION\nARG VERSION\nRUN echo $VERSION > image_version\n")
    plan = dockerfile.resolve(df, platform_args=PLAT)
    arg = df.stages[0].instructions[0]
    assert plan.stage_arg_values(arg, {}) == [("VERSION", "latest")]
    plan = dockerfile.resolve(df, {"VERSION": "v2"}, platform_args=PLAT)
    assert plan.stage_arg_values(arg, {}) == [("VERSION", "v2")]
    df2 = parse("FROM a\nARG X=$HOME/y\nARG Z\n")
    plan2 = dockerfile.resolve(df2, platform_args=PLAT)
    x, z = df2.stages[0].instructions
    assert plan2.stage_arg_values(x, {"HOME": "/root"}) == [("X", "/root/y")]
    assert plan2.stage_arg_values(z, {}) == [("Z", None)]


def test_arg_without_value_used_in_from():
    df = parse("ARG BASE\nFROM $BASE\n")
    with pytest.raises(RlError) as exc:
        dockerfile.resolve(df, platform_args=PLAT)
    assert exc.value.message == "Dockerfile:2: FROM uses ARG BASE, which has no value"
    assert "--build-arg BASE=" in exc.value.fix
    assert dockerfile.resolve(df, {"BASE": "alpine"}, platform_args=PLAT).stages[0].base == "alpine"
    # A default in the substitution itself is fine.
    df = parse("ARG TAG\nFROM alpine:${TAG:-3.19}\n")
    assert dockerfile.resolve(df, platform_args=PLAT).stages[0].base == "alpine:3.19"


def test_blank_base_name():
    df = parse("FROM ${NOPE}\n")
    with pytest.raises(RlError, match=r"^Dockerfile:1: base name \(\$\{NOPE\}\) should not be blank"):
        dockerfile.resolve(df, platform_args=PLAT)


def test_stage_references_and_order():
    df = parse("""\
        FROM golang AS build
        RUN go build
        FROM alpine AS test
        COPY --from=build /app /app
        FROM build AS dev
        FROM scratch
        COPY --from=0 /app /app
        COPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf
        COPY --from=TEST /x /x
    """)
    plan = dockerfile.resolve(df, platform_args=PLAT)
    assert plan.stages[2].base_stage == 0
    assert plan.stages[1].copy_from == {0: 0}
    assert plan.stages[3].copy_from == {0: 0, 1: "nginx:latest", 2: 1}
    assert plan.target == 3 and plan.order == [0, 1, 3]
    tplan = dockerfile.resolve(df, target="dev", platform_args=PLAT)
    assert tplan.target == 2 and tplan.order == [0, 2]


def test_copy_from_is_not_expanded():
    # BuildKit takes --from as written: a variable there is refused with a way out.
    df = parse("ARG SRC=build\nFROM a AS build\nFROM b\nCOPY --from=$SRC /x /x\n")
    with pytest.raises(RlError) as exc:
        dockerfile.resolve(df, platform_args=PLAT)
    assert exc.value.message == "Dockerfile:4: COPY --from=$SRC: variables are not expanded in --from"
    assert "FROM $SRC AS src" in exc.value.fix


@pytest.mark.parametrize(("text", "kwargs", "message"), [
    ("FROM a\nFROM b\nCOPY --from=5 /x /x\n", {}, "Dockerfile:3: invalid stage index 5 in --from"),
    ("FROM a AS one\nCOPY --from=one /x /x\n", {}, "Dockerfile:2: circular dependency detected on stage: one"),
    ("FROM a AS s0\nCOPY --from=s2 f1 /\nFROM b AS s1\nCOPY --from=s0 f /\nFROM c AS s2\nCOPY --from=s1 f /\n",
     {}, "Dockerfile:"),
    ("FROM a AS one\n", {"target": "two"}, "Dockerfile: target stage 'two' could not be found"),
    ("FROM ${A\n", {}, "Dockerfile:1: failed to process \"${A\": syntax error: missing '}'"),
])
def test_resolve_errors(text, kwargs, message):
    df = parse(text)
    with pytest.raises(RlError) as exc:
        dockerfile.resolve(df, platform_args=PLAT, **kwargs)
    assert exc.value.message.startswith(message), exc.value.message


def test_unused_build_args_reported():
    df = parse("ARG USED\nFROM a\nARG INSTAGE\n")
    plan = dockerfile.resolve(df, {"USED": "1", "INSTAGE": "2", "NOPE": "3", "HTTP_PROXY": "x"},
                              platform_args=PLAT)
    assert plan.unused_build_args == ["NOPE"]


def test_default_platform_args_native():
    args = dockerfile.default_platform_args()
    assert args["TARGETOS"] == "linux" and args["TARGETPLATFORM"].startswith("linux/")
    assert args["BUILDARCH"] == args["TARGETARCH"] != ""


def test_large_realistic_dockerfile():
    df = parse(textwrap.dedent("""\
        # syntax=docker/dockerfile:1
        ARG PYTHON=3.11
        FROM python:${PYTHON}-slim AS base
        ENV PYTHONDONTWRITEBYTECODE=1 \\
            PYTHONUNBUFFERED=1
        WORKDIR /app

        FROM base AS deps
        COPY requirements.txt .
        RUN --mount=type=cache,target=/root/.cache/pip \\
            pip install -r requirements.txt

        FROM base
        COPY --from=deps /usr/local /usr/local
        COPY . .
        USER 1000:1000
        EXPOSE 8000
        HEALTHCHECK --interval=30s CMD ["python", "-c", "import urllib.request"]
        ENTRYPOINT ["python", "-m", "app"]
        CMD ["--port", "8000"]
    """))
    plan = dockerfile.resolve(df, platform_args=PLAT)
    assert plan.stages[0].base == "python:3.11-slim"
    assert plan.order == [0, 1, 2]
    assert [type(i).__name__ for i in df.stages[2].instructions] == [
        "Copy", "Copy", "User", "Expose", "Healthcheck", "Entrypoint", "Cmd"]
    assert isinstance(df.stages[0].instructions[0], ins.Env)
    assert df.stages[0].instructions[0].pairs == (("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONUNBUFFERED", "1"))


# BuildKit's own heredoc expectations (special symbols, quoting, substitution).
HEREDOC_COPY_CASES = [
    ('COPY <<EOF quotefile\n"quotes in file"\nEOF\n', '"quotes in file"\n'),
    ("COPY <<EOF slashfile1\n\\\nEOF\n", "\n"),
    ("COPY <<EOF slashfile2\n\\\\\nEOF\n", "\\\n"),
    ("COPY <<EOF slashfile3\n\\$\nEOF\n", "$\n"),
    ('COPY <<"EOF" rawslashfile1\n\\\nEOF\n', "\\\n"),
    ('COPY <<"EOF" rawslashfile2\n\\\\\nEOF\n', "\\\\\n"),
    ('COPY <<"EOF" rawslashfile3\n\\$\nEOF\n', "\\$\n"),
    ("COPY <<EOF c1\nHello ${name}!\nEOF\n", "Hello world!\n"),
    ("COPY <<'EOF' c2\nHello ${name}!\nEOF\n", "Hello ${name}!\n"),
    ('COPY <<"EOF" c3\nHello ${name}!\nEOF\n', "Hello ${name}!\n"),
    ("COPY <<EOF q1\nHello '${name}'!\nEOF\n", "Hello 'world'!\n"),
    ('COPY <<EOF q2\nHello "${name}"!\nEOF\n', 'Hello "world"!\n'),
    ("COPY <<'EOF' qsingle2\nHello \"${name}\"!\nEOF\n", 'Hello "${name}"!\n'),
    ("COPY <<EOF /dest/foo-copy\n\tfoo\nEOF\n", "\tfoo\n"),
    ("COPY <<-EOF /dest/bar-copy\n\tbar\nEOF\n", "bar\n"),
]


@pytest.mark.parametrize(("text", "content"), HEREDOC_COPY_CASES)
def test_heredoc_copy_content_as_buildkit(text, content):
    copy = one(text, dedent=False).expand({"name": "world"})
    assert copy.contents[0].data == content


@pytest.mark.parametrize(("text", "script"), [
    ('RUN <<EOF\necho "\n\tfoo" > /dest/foo-run\nEOF\n', 'echo "\n\tfoo" > /dest/foo-run\n'),
    ('RUN <<-EOF\necho "\n\tbar" > /dest/bar-run\nEOF\n', 'echo "\nbar" > /dest/bar-run\n'),
    ('RUN <<-EOF sh > /dest/bar3-run\necho "\n\tbar"\nEOF\n', '<<-EOF sh > /dest/bar3-run\necho "\n\tbar"\nEOF'),
    ("RUN <<EOF 3<<IN1 awk -f -\nBEGIN {}\nEOF\nhello\nIN1\n", "<<EOF 3<<IN1 awk -f -\nBEGIN {}\nEOF\nhello\nIN1"),
    # RUN heredocs are never expanded by the builder: the shell does it.
    ('RUN <<EOF\necho "Hello ${name}!"\nEOF\n', 'echo "Hello ${name}!"\n'),
])
def test_heredoc_run_script_as_buildkit(text, script):
    run = one(text, dedent=False)
    assert run.expand({"name": "world"}).shell_script() == script


def test_heredoc_fd_and_shebang_chomp():
    run = one("RUN <<EOF 3<<IN1 awk -f -\nx\nEOF\ny\nIN1\n", dedent=False)
    assert [(d.name, d.fd) for d in run.heredocs] == [("EOF", None), ("IN1", 3)]
    run = one("RUN <<-EOF\n\t#!/bin/awk -f\n\tBEGIN {}\nEOF\n", dedent=False)
    assert run.shebang_heredoc is not None
    assert run.shebang_heredoc.text == "#!/bin/awk -f\nBEGIN {}\n"


def test_onbuild_trigger_parses_back():
    ob = one("ONBUILD COPY --chown=1:1 <<EOF /x\nhi $A\nEOF\n", dedent=False)
    trig = dockerfile.parse_trigger(ob.expression, "ONBUILD of base:1")
    assert isinstance(trig, ins.Copy) and trig.chown == "1:1"
    assert trig.expand({"A": "a"}).contents[0].data == "hi a\n"
    with pytest.raises(RlError, match=r"^ONBUILD of base:1: unknown instruction: BOGUS"):
        dockerfile.parse_trigger("BOGUS x", "ONBUILD of base:1")


def test_expansion_errors_name_file_and_line(tmp_path):
    p = tmp_path / "Containerfile"
    p.write_text("FROM a\nRUN true\nWORKDIR ${X\n")
    wd = dockerfile.parse_file(p).stages[0].instructions[1]
    with pytest.raises(RlError, match=r"^Containerfile:3: failed to process \"\$\{X\": syntax error: missing '\}'"):
        wd.expand({})
    env = one('ENV A="unclosed')
    with pytest.raises(RlError, match=r"^Dockerfile:2: failed to process"):
        env.expand({})


def test_build_check_warnings():
    df = parse("FROM a as b\nMAINTAINER me\nCMD run it\nENTRYPOINT [\"ok\"]\n")
    text = "\n".join(df.warnings)
    assert "line 1: 'as' and 'FROM' keywords' casing do not match" in text
    assert "line 2: MAINTAINER is deprecated" in text
    assert "line 3: JSON arguments recommended for CMD" in text
    assert "ENTRYPOINT" not in text
    assert parse("FROM a AS b\nCMD [\"x\"]\n").warnings == []


def test_scratch_and_add_unpack():
    df = parse("FROM scratch\nADD --unpack=false a.tar /x/\n")
    plan = dockerfile.resolve(df, platform_args=PLAT)
    assert plan.stages[0].is_scratch
    assert df.stages[0].instructions[0].unpack is False


# The line parser's tree, in BuildKit's dump format (parser/testfiles/*/result style).
AST_CASES = [
    ("FROM debian\nADD check.sh main.sh /app/\nCMD /app/main.sh\n",
     ['(from "debian")', '(add "check.sh" "main.sh" "/app/")', '(cmd "/app/main.sh")']),
    ("HEALTHCHECK\nHEALTHCHECK --interval=5s --retries=3 \\\n  CMD /bin/check --quiet\nHEALTHCHECK CMD\n"
     "HEALTHCHECK   CMD   x y\nHEALTHCHECK --timeout=3s CMD [\"chk\"]\nHEALTHCHECK CONNECT TCP 7000\n",
     ['(healthcheck)', '(healthcheck ["--interval=5s" "--retries=3"] "CMD" "/bin/check --quiet")',
      '(healthcheck "CMD")', '(healthcheck "CMD" "x y")', '(healthcheck ["--timeout=3s"] "CMD" "chk")',
      '(healthcheck "CONNECT" "TCP 7000")']),
    ('ENV a=b c="d e"\nENV legacy  value  here\nLABEL "k"=v\n',
     ['(env "a" "b" "=" "c" "\\"d e\\"" "=")', '(env "legacy" "value  here" "")',
      '(label "\\"k\\"" "v" "=")']),
    ("ONBUILD RUN echo hi\nARG a b=c\nEXPOSE 80  443\nVOLUME [\"/a\"]\nCOPY --from=x --chown=1 a b\n",
     ['(onbuild (run "echo hi"))', '(arg "a" "b=c")', '(expose "80" "443")', '(volume "/a")',
      '(copy ["--from=x" "--chown=1"] "a" "b")']),
    ('RUN --mount="type=cache,target=/x y" echo\nFORM bad args\nuser  me  you\n',
     ['(run ["--mount=type=cache,target=/x y"] "echo")', "(form \"\")", '(user "me  you")']),
]


@pytest.mark.parametrize(("text", "dump"), AST_CASES)
def test_line_parser_tree(text, dump):
    nodes, _, _, _ = dockerfile._read_nodes(text)
    assert [n.dump() for n in nodes] == dump


# BuildKit's parser test vectors for heredoc extraction: (line..., [(name, content, expand, chomp, fd)])
HEREDOC_VECTORS = [
    ("USER <<INVALID\n", []),
    ("RUN <<EMPTY\nEMPTY\n", [("EMPTY", "", True, False, None)]),
    ("RUN 3<<EMPTY2\nEMPTY2\n", [("EMPTY2", "", True, False, 3)]),
    ('RUN "<<NOHEREDOC"\n', []),
    ("RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n", [("INDENT", "\tfoo\n\tbar\n", True, False, None)]),
    ("RUN <<-UNINDENT\n\tbaz\n\tquux\nUNINDENT\n", [("UNINDENT", "\tbaz\n\tquux\n", True, True, None)]),
    ("RUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n", [("UNINDENT2", "\tbaz\n\tquux\n", True, True, None)]),
    ("RUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n",
     [("NOEXPAND", "\tdon't expand $NAME\n", False, True, None)]),
    ("RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n", [("MOUNT", "echo hello\n", True, False, None)]),
    ("COPY <<X <<Y /dest\nY\nX\nX\nY\n", [("X", "Y\n", True, False, None), ("Y", "X\n", True, False, None)]),
    ("RUN <<COMPLEX python3\nprint('hello world')\nCOMPLEX\n", [("COMPLEX", "print('hello world')\n", True, False, None)]),
    ("COPY <<file.txt /dest\nhello world\nfile.txt\n", [("file.txt", "hello world\n", True, False, None)]),
    ("RUN <<eo'f'\necho foo\neof\n", [("eof", "echo foo\n", False, False, None)]),
    ("RUN <<eo\\'f\necho foo\neo'f\n", [("eo'f", "echo foo\n", True, False, None)]),
    ("RUN <<'e'o\\'f\necho foo\neo'f\n", [("eo'f", "echo foo\n", False, False, None)]),
    ("RUN <<'one two'\necho bar\none two\n", [("one two", "echo bar\n", False, False, None)]),
    ("RUN <<$EOF\n$EOF\n", [("$EOF", "", True, False, None)]),
    ("RUN <<  EOF\nEOF\n", [("EOF", "", True, False, None)]),
    ("RUN <<  EOF  > foo\nEOF\n", [("EOF", "", True, False, None)]),
    ("RUN <<- EOF\n\tEOF\n", [("EOF", "", True, True, None)]),
    ("RUN cat << -EOF\n\tEOF\n-EOF\n", [("-EOF", "\tEOF\n", True, False, None)]),
    ('RUN ["<<EOF"]\n', []),
]


@pytest.mark.parametrize(("text", "expected"), HEREDOC_VECTORS)
def test_heredoc_vectors(text, expected):
    nodes, _, _, _ = dockerfile._read_nodes(text)
    got = [(d.name, d.content, d.expand, d.chomp, d.fd) for d in nodes[0].heredocs]
    assert got == expected


@pytest.mark.parametrize(("text", "words"), [
    ("foo", ["foo"]),
    ("foo bar", ["foo", "bar"]),
    ("foo\\ bar", ["foo\\ bar"]),
    ("foo=bar", ["foo=bar"]),
    ("foo bar 'abc xyz'", ["foo", "bar", "'abc xyz'"]),
    ('foo bar "abc xyz"', ["foo", "bar", '"abc xyz"']),
    ("àöû", ["àöû"]),
    ('föo bàr "âbc xÿz"', ["föo", "bàr", '"âbc xÿz"']),
])
def test_parse_words_keeps_quotes(text, words):
    assert dockerfile._parse_words(text, "\\") == words


@pytest.mark.parametrize(("text", "escape", "words"), [
    ("'a\\ b'", "\\", ["'a\\ b'"]),          # no escape inside single quotes
    ('"a\\" b"', "\\", ['"a\\" b"']),        # an escaped quote does not end the quote
    ("a\\", "\\", ["a"]),                    # an escape at the very end is dropped
    ("\\", "\\", []),
    ("''", "\\", ["''"]),                    # quotes make a word even when empty
    ("a` b", "`", ["a` b"]),                 # the escape directive's character
    ("a` b", "\\", ["a`", "b"]),
    ("'a` b' c", "`", ["'a` b'", "c"]),
])
def test_parse_words_escapes(text, escape, words):
    assert dockerfile._parse_words(text, escape) == words


@pytest.mark.parametrize(("text", "rest", "flags"), [
    ("--a=1 --b x y", "x y", ["--a=1", "--b"]),
    ('--chown="a b" src dst', "src dst", ["--chown=a b"]),   # quotes removed
    ("--x='it\\'s' y", "y", ["--x=it's"]),                  # backslash escapes in '...' too
    ('--a="x\\" y" z', "z", ['--a=x" y']),
    ("--a\\ b c", "c", ["--a b"]),
    ("--a=x\\\\ y", "y", ["--a=x\\"]),
    ("--a=x\\", "", ["--a=x"]),                             # a backslash at the end is dropped
    ('--a="" x', "x", ["--a="]),
    ("-- --notaflag", " --notaflag", []),                    # `--` ends the flags
    ("--a --", "", ["--a"]),
    ('--a "" x', '"" x', ["--a"]),                           # the first word without `--` ends them
    ("--a \\", "\\", ["--a"]),
    ("-a b", "-a b", []),
])
def test_extract_flags(text, rest, flags):
    assert dockerfile._extract_flags(text) == (rest, flags)


def test_empty_continuation_warnings_name_the_instruction():
    df = parse("FROM alpine:3.6\n\nRUN valid \\\n    continuation\n\nRUN something \\\n\n    following \\\n\n"
               "    more\n\nRUN another \\\n\n    thing\n\nRUN non-indented \\\n# this is a comment\n"
               "   after-comment\n\nRUN indented \\\n    # this is an indented comment\n    comment\n",
               dedent=False)
    assert len(df.warnings) == 2
    assert "line 6: empty continuation line found in: RUN something     following     more" in df.warnings[0]
    assert "RUN another     thing" in df.warnings[1]
    cmds = [i.command[0] for i in df.stages[0].instructions]
    assert cmds[-2:] == ["non-indented    after-comment", "indented     comment"]


def test_duplicate_stage_names_warn_and_the_last_wins():
    df = parse("FROM a AS x\nFROM b AS X\nFROM x AS y\nFROM c\nCOPY --from=X /f /f\n")
    assert any("line 2: duplicate stage name 'x'" in w for w in df.warnings)
    plan = dockerfile.resolve(df, platform_args=PLAT)
    assert plan.stages[2].base_stage == 1
    assert plan.stages[3].copy_from == {0: 1}
    assert dockerfile.resolve(df, target="x", platform_args=PLAT).target == 1


def test_from_names_a_stage_only_in_lower_case():
    df = parse("FROM a AS build\nFROM Build\n")
    plan = dockerfile.resolve(df, platform_args=PLAT)
    assert plan.stages[1].base_stage is None and plan.stages[1].base == "Build"


def test_run_mount_from_stage_is_a_dependency():
    df = parse("FROM a AS tools\nFROM b AS unused\nFROM c\n"
               "RUN --mount=type=bind,from=tools,source=/bin,target=/t --mount=type=cache,target=/c make\n")
    plan = dockerfile.resolve(df, platform_args=PLAT)
    assert plan.stages[2].mount_from == {(0, 0): 0}
    assert plan.order == [0, 2]


def test_foreign_syntax_directive_warns():
    assert parse("# syntax=docker/dockerfile:1.7-labs\nFROM a\n").warnings == []
    assert parse("# syntax=docker.io/docker/dockerfile:1@sha256:abc\nFROM a\n").warnings == []
    warn = parse("# syntax=example.com/my/frontend:2\nFROM a\n").warnings
    assert len(warn) == 1 and "another Dockerfile frontend" in warn[0]


def test_errors_stay_on_one_line():
    copy = one("COPY <<EOF /x\nline one\n${BROKEN\nEOF\n", dedent=False)
    with pytest.raises(RlError) as exc:
        copy.expand({})
    assert "\n" not in str(exc.value)
    assert exc.value.message.startswith("Dockerfile:2: failed to process \"line one\\n${BROKEN\\n\"")
