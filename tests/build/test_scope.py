"""ARG and ENV scoping while a stage is built, following the Dockerfile reference's
ARG section (scope, ENV overriding ARG, global ARGs, predefined and platform ARGs)."""

from __future__ import annotations

from rootless.build import dockerfile
from rootless.build import instructions as ins
from rootless.build.scope import StageScope
from tests.build.helpers import parse

PLAT = {"BUILDPLATFORM": "linux/amd64", "TARGETPLATFORM": "linux/arm64", "TARGETARCH": "arm64",
        "TARGETOS": "linux"}


def walk(text: str, build_args=None, image_env=(), stage: int = -1):
    df = parse(text)
    plan = dockerfile.resolve(df, build_args or {}, platform_args=PLAT)
    scope = StageScope(plan, image_env)
    steps = [scope.step(i) for i in df.stages[stage].instructions]
    return scope, steps


def test_arg_scope_starts_at_its_line():
    # The reference's example: USER before ARG sees nothing, after it the value.
    scope, steps = walk("""\
        FROM busybox
        USER ${username:-some_user}
        ARG username
        USER $username
    """, {"username": "what_user"})
    assert steps[0].user == "some_user"
    assert steps[2].user == "what_user"
    assert scope.args_in_scope == {"username": "what_user"}


def test_env_overrides_arg():
    # The reference: ENV CONT_IMG_VER=v1.0.0 wins over --build-arg CONT_IMG_VER=v2.0.1
    scope, steps = walk("""\
        FROM ubuntu
        ARG CONT_IMG_VER
        ENV CONT_IMG_VER=v1.0.0
        RUN echo $CONT_IMG_VER
        WORKDIR /$CONT_IMG_VER
    """, {"CONT_IMG_VER": "v2.0.1"})
    assert steps[3].path == "/v1.0.0"
    assert scope.run_env()["CONT_IMG_VER"] == "v1.0.0"
    # ...and ENV from an ARG with a default takes the build arg
    scope, steps = walk("""\
        FROM ubuntu
        ARG CONT_IMG_VER
        ENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}
    """, {"CONT_IMG_VER": "v2.0.1"})
    assert scope.image_env() == ["CONT_IMG_VER=v2.0.1"]
    scope, _ = walk("FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n")
    assert scope.image_env() == ["CONT_IMG_VER=v1.0.0"]


def test_args_are_not_kept_in_the_image_but_reach_run():
    scope, _ = walk("FROM a\nARG SECRET=s\nARG EMPTY\nENV KEEP=k\n", {"http_proxy": "http://p:3128"},
                    image_env=["PATH=/usr/bin", "HOME=/root"])
    assert scope.image_env() == ["PATH=/usr/bin", "HOME=/root", "KEEP=k"]
    assert scope.run_env() == {"http_proxy": "http://p:3128", "SECRET": "s", "PATH": "/usr/bin",
                               "HOME": "/root", "KEEP": "k"}


def test_image_env_is_used_for_expansion():
    _, steps = walk("FROM python\nWORKDIR $PYTHON_HOME/app\n", image_env={"PYTHON_HOME": "/opt/py"})
    assert steps[0].path == "/opt/py/app"


def test_global_and_platform_args_in_a_stage():
    _, steps = walk("""\
        ARG VERSION=latest
        FROM busybox:$VERSION
        ARG VERSION
        ARG TARGETARCH
        ARG BUILDPLATFORM=mine
        LABEL v=$VERSION arch=$TARGETARCH unset=$TARGETOS b=$BUILDPLATFORM
    """)
    assert steps[-1].pairs == (("v", "latest"), ("arch", "arm64"), ("unset", ""), ("b", "mine"))


def test_global_arg_without_stage_declaration_is_not_visible():
    _, steps = walk("ARG V=1\nFROM a\nLABEL v=${V:-none}\n")
    assert steps[0].pairs == (("v", "none"),)


def test_each_stage_has_its_own_scope():
    df = parse("FROM a AS one\nARG X=1\nENV Y=2\nFROM b\nLABEL x=${X:-unset} y=${Y:-unset}\n")
    plan = dockerfile.resolve(df, platform_args=PLAT)
    StageScope(plan).step(df.stages[0].instructions[0])
    scope = StageScope(plan)
    assert scope.step(df.stages[1].instructions[0]).pairs == (("x", "unset"), ("y", "unset"))


def test_arg_default_expands_with_earlier_values():
    _, steps = walk("FROM a\nENV BASE=/srv\nARG DIR=$BASE/app\nWORKDIR $DIR\n")
    assert isinstance(steps[1], ins.Arg) and steps[1].args == (("DIR", "/srv/app"),)
    assert steps[2].path == "/srv/app"
