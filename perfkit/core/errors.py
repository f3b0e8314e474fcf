"""The three ways things go wrong: the user's input, an unsupported case, a case that broke."""

from __future__ import annotations

import re

ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class PerfkitError(Exception):
    """The user's input is wrong; the CLI prints one line and exits 2, nothing is run or written."""

    def __init__(self, subject: str, what: str, fix: str = "") -> None:
        super().__init__(subject, what, fix)
        self.subject, self.what, self.fix = subject, what, fix

    def __str__(self) -> str:
        line = f"{self.subject}: {self.what}" if self.subject else self.what
        return f"{line} — {self.fix}" if self.fix else line


class Unsupported(Exception):
    """This case cannot run here (missing package or provider): the row is skipped with the reason."""


class CaseFailed(Exception):
    """A case crashed, hung or raised: the row fails with this one-line reason and the sweep goes on."""


def brief(exc: BaseException, limit: int = 180, *, typed: bool = False) -> str:
    """An exception's message for one line of output: whitespace collapsed, terminal colours removed, cut at
    `limit`; its type's name when it has no message. `typed` puts the type's name first
    ("RuntimeError: boom"), for errors nobody anticipated, where the type is half the story."""
    text = " ".join(ANSI_COLOUR.sub("", str(exc)).split())
    if typed:
        return f"{type(exc).__name__}: {text[:10_000] or type(exc).__name__}"[:limit]
    return text[:limit] or type(exc).__name__
