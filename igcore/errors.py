"""Library exceptions. The CLI turns them into one red line and an exit code."""

from typing import Self


class IgError(Exception):
    """An error the user can act on; `str()` is the one sentence shown to them."""

    exit_code = 1
    # What the sentence names (gadget, metric, reason), as fields of a structured log line.
    fields: dict[str, str] = {}

    def naming(self, **fields: str) -> Self:
        """This error, with the fields its sentence names; raise the result."""
        self.fields = {**self.fields, **fields}
        return self


class ConfigError(IgError):
    """Bad config, selector or flag: a usage error (exit 2)."""

    exit_code = 2


class RuntimeFailure(IgError):
    """Something failed while running: no privileges, no BPF, port taken (exit 1)."""

    exit_code = 1


def describe(exc: BaseException) -> str:
    """One line for a failure: ig's own errors say it in their sentence; anything else (a plugin's
    bug) is named by its type too."""
    return str(exc) if isinstance(exc, IgError) else f"{type(exc).__name__}: {exc}"
