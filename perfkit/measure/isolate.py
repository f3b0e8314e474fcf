"""Run one function in a spawned worker with a timeout: a crash, a kill or a hang becomes CaseFailed; and the
one guarded call every stage uses, which turns whatever went wrong into a row's status and reason."""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from perfkit.core.errors import CaseFailed, PerfkitError, Unsupported, brief

T = TypeVar("T")


@dataclass(frozen=True)
class Failure:
    """What a guarded call came back with instead of a value: skipped (Unsupported) or failed, and why."""

    status: str
    reason: str


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
    return unpack(kind, payload)


def unpack(kind: str, payload: Any) -> Any:
    """A worker's message back in the parent: its value, or its error raised again here."""
    if kind == "user":
        raise PerfkitError(*payload)
    if kind == "unsupported":
        raise Unsupported(payload)
    if kind == "error":
        raise CaseFailed(payload)
    return payload


def pack(exc: BaseException) -> tuple[str, Any]:
    """An error inside a worker as the message that crosses to the parent."""
    if isinstance(exc, PerfkitError):
        return "user", (exc.subject, exc.what, exc.fix)
    if isinstance(exc, Unsupported):
        return "unsupported", str(exc)
    if isinstance(exc, CaseFailed):  # already written for the row
        return "error", str(exc)
    return "error", brief(exc, 300, typed=True)


def guarded(exc: BaseException) -> Failure:
    """What went wrong in a case, as its row's status and reason: Unsupported is skipped, anything else
    failed; an unanticipated exception's reason names its type, as a worker's would."""
    if isinstance(exc, Unsupported):
        return Failure("skipped", str(exc))
    if isinstance(exc, CaseFailed | PerfkitError):
        return Failure("failed", str(exc))
    return Failure("failed", brief(exc, 300, typed=True))


def call_in(fn: Callable[[Any], T], arg: Any, timeout_s: float, isolate: bool) -> T:
    """fn(arg) in a spawned worker when `isolate` (see call_isolated), else right here (--no-isolate)."""
    return call_isolated(fn, arg, timeout_s) if isolate else fn(arg)


def call_guarded(fn: Callable[[Any], T], arg: Any, timeout_s: float, isolate: bool) -> T | Failure:
    """fn(arg) as call_in runs it, with every way it can go wrong turned into a Failure: Unsupported is
    skipped, anything else failed. In-process (--no-isolate), an unanticipated exception's reason names its
    type, as the worker's would."""
    try:
        return call_in(fn, arg, timeout_s, isolate)
    except Exception as exc:
        return guarded(exc)


def _child(sender: Connection, fn: Callable[[Any], Any], arg: Any) -> None:
    quiet_worker()
    message: tuple[str, Any]
    try:
        message = ("ok", fn(arg))
    except BaseException as exc:  # the parent shows it as the row's reason; the worker ends anyway
        message = pack(exc)
    sender.send(message)
    sender.close()


def quiet_worker() -> None:
    import os
    import sys
    import warnings

    # Frameworks' deprecation chatter would interleave with the parent's table on the shared stderr; what a
    # worker has to say comes back in its result.
    warnings.simplefilter("ignore")
    # The parent's stdout is the table or the JSON a user pipes on: a tool printing progress there (onnxruntime's
    # calibrators print "Collecting tensor data …") would break it. The descriptor itself, so C code is quiet too.
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "worker vanished without an exit code"
    if code < 0:
        name = signal.Signals(-code).name
        if name == "SIGKILL":
            return "killed (SIGKILL — out of memory?)"
        return f"crashed ({name})"
    return f"worker exited with code {code} before reporting"
