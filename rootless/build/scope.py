"""The variables in scope while one stage is built, by Docker's rules.

A stage starts with its base image's environment (the image config's Env) and no build
args. Walking its instructions in order:

- `ARG name[=default]` brings `name` into scope from that line to the end of the stage,
  valued by `BuildPlan.stage_arg_values` (a --build-arg wins, then the default, then the
  global ARG, then the automatic platform value);
- `ENV` adds to the environment, and an ENV always overrides an ARG of the same name;
- every other instruction is expanded (where Docker expands) against ARGs and ENVs in
  scope at that point; RUN sees the ARGs as environment variables too, without them being
  kept in the image, plus the predefined proxy build args.

The builder calls `step(inst)` for each instruction and uses what it returns; it reads
`image_env()` for the config it commits and `run_env()` for a RUN's process. `args_in_scope`
is what the build cache must key on besides the instruction text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from rootless.build import instructions as ins
from rootless.build.dockerfile import PREDEFINED_ARGS, BuildPlan


def _env_dict(env: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    if isinstance(env, Mapping):
        return dict(env)
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


class StageScope:
    """ARGs and ENVs of one stage as its instructions are walked. `image_env` is the base
    image's environment, as a mapping or as the config's ["K=V", ...] list."""

    def __init__(self, plan: BuildPlan, image_env: Mapping[str, str] | Iterable[str] = ()):
        self.plan = plan
        self.env: dict[str, str] = _env_dict(image_env)
        self.args: dict[str, str | None] = {}

    def expansion_env(self) -> dict[str, str]:
        """What `$NAME` means at this point: ARGs with a value, overridden by ENVs."""
        out = {k: v for k, v in self.args.items() if v is not None}
        out.update(self.env)
        return out

    def step(self, inst: ins.Instruction) -> ins.Instruction:
        """The instruction as Docker dispatches it here (expanded where Docker expands),
        after which the scope includes what an ARG or ENV defines."""
        if isinstance(inst, ins.Arg):
            values = self.plan.stage_arg_values(inst, self.expansion_env())
            for key, value in values:
                self.args[key] = value
            return dataclasses.replace(inst, args=tuple(values))
        expanded = inst.expand(self.expansion_env())
        if isinstance(expanded, ins.Env):
            for key, value in expanded.pairs:
                self.env[key] = value
        return expanded

    @property
    def args_in_scope(self) -> dict[str, str]:
        """The ARGs declared so far that have a value (for the cache key and RUN)."""
        return {k: v for k, v in self.args.items() if v is not None}

    def run_env(self) -> dict[str, str]:
        """The environment of a RUN here: proxy build args, ARGs in scope, then ENVs."""
        out = {k: v for k, v in self.plan.build_args.items() if k in PREDEFINED_ARGS}
        out.update(self.args_in_scope)
        out.update(self.env)
        return out

    def image_env(self) -> list[str]:
        """The environment to store in the image config (ARGs are never stored)."""
        return [f"{k}={v}" for k, v in self.env.items()]
