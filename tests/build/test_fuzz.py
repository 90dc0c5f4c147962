"""Whatever text it is given, the parser answers with stages or an RlError naming the file
and line, never with another exception (hypothesis-generated Dockerfile-like input)."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rootless.build import dockerfile
from rootless.build.shellwords import ExpansionError, Lexer
from rootless.errors import RlError

KEYWORDS = ["FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE",
            "USER", "WORKDIR", "VOLUME", "SHELL", "HEALTHCHECK", "ONBUILD", "STOPSIGNAL",
            "MAINTAINER", "BOGUS", "# escape=`", "# syntax=x", "#", ""]
PIECES = st.sampled_from(["a", " ", "\t", "\\", "`", "'", '"', "$", "{", "}", ":-", "=", "[", "]",
                          ",", "<<", "-", "EOF", "--from=", "--mount=", "AS", "\n", "*", "é"])
LINE = st.builds(lambda kw, parts: kw + " " + "".join(parts),
                 st.sampled_from(KEYWORDS), st.lists(PIECES, max_size=12))
DOCKERFILE = st.lists(LINE, max_size=12).map(lambda lines: "\n".join(lines))


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCKERFILE)
def test_parse_never_crashes(text):
    try:
        df = dockerfile.parse(text)
    except RlError as e:
        assert re.match(r"^Dockerfile:\d+: ", e.message), e.message
        assert "\n" not in str(e)
        return
    try:
        plan = dockerfile.resolve(df, {}, platform_args={})
    except RlError as e:
        assert re.match(r"^Dockerfile(:\d+)?: ", e.message), e.message
        return
    for st_ in df.stages:
        for inst in st_.instructions:
            try:
                inst.expand({"a": "x"})
            except RlError as e:
                assert re.match(r"^Dockerfile:\d+: ", e.message), e.message
                assert "\n" not in str(e)
    assert plan.order[-1] == plan.target


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(PIECES, max_size=16).map("".join))
def test_lexer_raises_only_expansion_errors(word):
    for escape in ("\\", "`"):
        try:
            Lexer(escape).process(word, {"a": "1 2", "EOF": ""})
        except ExpansionError:
            pass


IGNORE_PIECES = st.sampled_from(["a", "b", "*", "**", "?", "[", "]", "^", "-", "\\", "!", "/", ".",
                                 "..", " ", "#", "\n", "(", "$", "+"])


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(IGNORE_PIECES, max_size=30).map("".join),
       st.lists(st.sampled_from(["a", "b", "ab", ".x", "a*b"]), min_size=1, max_size=4).map("/".join))
def test_dockerignore_answers_or_refuses(text, path):
    from rootless.build.dockerignore import IgnoreRules

    try:
        rules = IgnoreRules.from_text(text)
    except RlError as e:
        assert re.match(r"^\.dockerignore:\d+: ", e.message) and "\n" not in str(e)
        return
    assert rules.excluded(path) in (True, False)
    assert rules.may_descend(path) in (True, False)
