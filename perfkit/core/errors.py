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


# The line a printed traceback ends with: the error's type and message ("RuntimeError: Expected tensor …").
TRACEBACK_END = re.compile(r"^\s*[\w.]+(?:Error|Exception): ", re.MULTILINE)


def root_cause(exc: BaseException, limit: int = 600) -> str:
    """The first error behind `exc`, typed, for one line: the last of its chain (what a wrapper raised `from`, or
    raised while handling), since wrappers (torch.onnx's dynamo exporter) restate the step, not the reason; and,
    of a message that quotes a traceback (TorchScript's interpreter does), the error that traceback ends with."""
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        exc = nxt
    text = ANSI_COLOUR.sub("", str(exc))
    ends = list(TRACEBACK_END.finditer(text)) if "Traceback" in text else []
    if ends:
        return " ".join(text[ends[-1].start():].split())[:limit]
    return brief(exc, limit, typed=True)
