"""The error type every layer raises for a user-facing failure.

An `RlError` carries one line saying what went wrong and, where we know it, one line
saying how to fix it. Front ends print both and exit with `exit_code` (Docker uses 125
for an error of the engine itself, as opposed to the container's own exit status).
"""


class RlError(Exception):
    exit_code = 125

    def __init__(self, message: str, fix: str | None = None, *, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} ({self.fix})" if self.fix else self.message


class NotFound(RlError):
    """A named image, container, volume or network does not exist."""


class Conflict(RlError):
    """The request clashes with current state (name in use, object in use)."""


class InvalidArgument(RlError):
    """A flag, reference or value the user gave cannot be used."""
