"""Run one function in a spawned worker with a timeout: a crash, a kill or a hang becomes CaseFailed."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from perfkit.errors import CaseFailed, PerfkitError, Unsupported, brief

T = TypeVar("T")


def call_isolated(fn: Callable[[Any], T], arg: Any, timeout_s: float) -> T:
    """fn(arg) in a fresh process; its PerfkitError and Unsupported are raised here again, anything else is
    CaseFailed."""
    ctx = mp.get_context("spawn")  # fork would copy this process's threads and onnxruntime state
    receiver, sender = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=_child, args=(sender, fn, arg), daemon=True)
    worker.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise CaseFailed(f"timed out after {timeout_s:g} s (hung?) — raise --timeout if it is just slow")
        try:
            kind, payload = receiver.recv()
        except EOFError:
            worker.join(5)
            raise CaseFailed(describe_exit(worker.exitcode)) from None
    finally:
        if worker.is_alive():
            worker.kill()
        worker.join(5)
        receiver.close()
    if kind == "user":
        raise PerfkitError(*payload)
    if kind == "unsupported":
        raise Unsupported(payload)
    if kind == "error":
        raise CaseFailed(payload)
    return payload


def call_in(fn: Callable[[Any], T], arg: Any, timeout_s: float, isolate: bool) -> T:
    """fn(arg) in a spawned worker when `isolate` (see call_isolated), else right here (--no-isolate)."""
    return call_isolated(fn, arg, timeout_s) if isolate else fn(arg)


def _child(sender, fn, arg) -> None:
    import warnings

    # Frameworks' deprecation chatter would interleave with the parent's table on the shared stderr; what a
    # worker has to say comes back in its result.
    warnings.simplefilter("ignore")
    try:
        message = ("ok", fn(arg))
    except PerfkitError as exc:
        message = ("user", (exc.subject, exc.what, exc.fix))
    except Unsupported as exc:
        message = ("unsupported", str(exc))
    except BaseException as exc:  # the parent shows it as the row's reason; the worker ends anyway
        message = ("error", one_line(exc))
    sender.send(message)
    sender.close()


@contextlib.contextmanager
def silenced(*fds: int):
    """Frameworks write start-up banners and failed graphs straight to file descriptors 1 and 2, past
    Python: hide them for the block. Python's exceptions still propagate, with their messages."""
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


def one_line(exc: BaseException) -> str:
    text = brief(exc, 10_000)
    return f"{type(exc).__name__}: {text}"[:300]


def describe_exit(code: int | None) -> str:
    if code is None:
        return "worker vanished without an exit code"
    if code < 0:
        name = signal.Signals(-code).name
        if name == "SIGKILL":
            return "killed (SIGKILL — out of memory?)"
        return f"crashed ({name})"
    return f"worker exited with code {code} before reporting"
