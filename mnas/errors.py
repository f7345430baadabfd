"""Errors that reach the user as one line and exit code 2 (see `mnas.cli`)."""


class UserError(Exception):
    """Bad input from the user: unknown name, malformed string, missing file.

    The CLI prints `error: <message>` and exits with code 2, no traceback.
    Library callers catch it like any other exception.
    """

    exit_code = 2


class UnknownNameError(UserError, KeyError):
    """An unknown registry name; the message lists the known ones."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0])
