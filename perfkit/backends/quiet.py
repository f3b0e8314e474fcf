"""Frameworks' own chatter kept off perfkit's output: start-up banners and failed graphs written straight to
file descriptors 1 and 2, past Python."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def silenced(*fds: int) -> Iterator[None]:
    """Hide what is written to `fds` (default stdout and stderr) during the block. Python's exceptions still
    propagate, with their messages."""
    fds = fds or (1, 2)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "w") as devnull, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for fd in fds:
                os.dup2(devnull.fileno(), fd)
            yield
    finally:
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
