"""Validation of a compose file against the Compose Specification's JSON schema.

The schema is not copied into rl: it comes with check-jsonschema (PyPI), which keeps the
compose-spec project's compose-spec.json among its vendored schemas and refreshes them with
each release (docs/design.md, "Compose" says why this package). It is read as package data;
check-jsonschema's own code is never imported.
"""

from __future__ import annotations

import functools
import json
import os

from rootless.compose.errors import ComposeError, path_text, where

_PACKAGE = "check_jsonschema.builtin_schemas.vendor"
_FILE = "compose-spec.json"


@functools.cache
def _validator():
    import jsonschema

    # The file is found, not imported through the package: importing check_jsonschema
    # runs its CLI's imports (requests, ...), ~0.3 s on every `rl compose`.
    try:
        with open(_schema_path()) as f:
            text = f.read()
    except OSError:
        raise ComposeError("the compose-spec schema is not installed",
                           "install rl with its dependencies (pip install check-jsonschema)") \
            from None
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=None)


@functools.cache
def _schema_path() -> str:
    import importlib.util

    spec = importlib.util.find_spec(_PACKAGE.split(".")[0])
    if spec is None or not spec.submodule_search_locations:
        raise ComposeError("the compose-spec schema is not installed",
                           "install rl with its dependencies (pip install check-jsonschema)")
    return os.path.join(spec.submodule_search_locations[0], *_PACKAGE.split(".")[1:], _FILE)


def _marker(doc) -> str | None:
    """The file that says this document (as interpolated) passed this schema before:
    validation is a pure function of the two, and importing jsonschema costs ~0.2 s of
    every `rl compose up` (a second `up` with nothing changed is meant to take < 0.5 s)."""
    import hashlib

    from rootless.store import paths

    try:
        st = os.stat(_schema_path())
    except OSError:
        return None
    key = hashlib.sha256(json.dumps([doc, _schema_path(), st.st_mtime_ns, st.st_size],
                                    sort_keys=True, default=str).encode()).hexdigest()
    return str(paths.data_dir() / "compose-valid" / key)


def validate(doc, file: str) -> None:
    """Raise ComposeError naming the file, the path in it and what was expected, for the
    error closest to the user's mistake (jsonschema's best_match)."""
    if not isinstance(doc, dict):
        raise ComposeError(f"{file}: the top level must be a mapping, not "
                           f"{_kind(doc)}")
    marker = _marker(doc)
    if marker and os.path.exists(marker):
        return
    import jsonschema.exceptions

    errors = list(_validator().iter_errors(doc))
    if not errors:
        if marker:
            try:
                from rootless.store import paths

                paths.ensure_store()
                os.makedirs(os.path.dirname(marker), mode=0o700, exist_ok=True)
                with open(marker, "w"):
                    pass
            except OSError:
                pass  # a cache: without it, the next run validates again
        return
    # A key that fails its own schema also counts as "unevaluated" for its parent's
    # unevaluatedProperties: that second error hides the real one, so it goes first.
    real = [e for e in errors if e.validator != "unevaluatedProperties"]
    err = jsonschema.exceptions.best_match(real or errors)
    raise ComposeError(f"{where(file, path_text(err.absolute_path) or '(top level)')}: "
                       f"{_explain(err)}")


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", int: "a number",
            float: "a number", bool: "a boolean", type(None): "empty"}.get(type(value),
                                                                             type(value).__name__)


def _explain(err) -> str:
    """jsonschema's message reworded to say what was expected."""
    v = err.validator
    if v in ("additionalProperties", "unevaluatedProperties"):
        import re

        m = re.search(r"\((.*) (?:was|were) unexpected\)", err.message)
        extra = m.group(1) if m else err.message
        return f"unknown key {extra} (not in the Compose Specification)"
    if v == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"expected {want}, got {_kind(err.instance)} {json.dumps(err.instance)[:60]}"
    if v in ("oneOf", "anyOf"):
        kinds = sorted({s.get("type") if isinstance(s.get("type"), str) else
                        "/".join(s.get("type", [])) or s.get("$ref", "?").rsplit("/", 1)[-1]
                        for s in err.validator_value})
        return (f"{json.dumps(err.instance)[:60]} is not valid here: expected "
                f"{' or '.join(k for k in kinds if k)}")
    if v == "enum":
        return f"{json.dumps(err.instance)} is not one of {', '.join(map(str, err.validator_value))}"
    if v == "pattern":
        return f"{json.dumps(err.instance)} does not match {err.validator_value}"
    if v == "required":
        return err.message.replace("is a required property", "is required")
    return err.message
