"""A case held open for the interleaving scheduler: in its own spawned worker (the default), or in this process
(`--no-isolate`). Both answer the same three requests: open (open, check, warm up), block (time n calls),
finish (memory, outputs, profile; close).

An idle worker is stopped (SIGSTOP) until its next block: onnxruntime's intra-op threads spin for about 50 ms
after each run, and on a small machine that spin took a core from the worker being timed (measured on a
2-core VM: a 180 µs CNN's mean call grew 1.46x beside a spinning idle worker, 1.12x alone; with the idle
worker stopped, 1.12x). Stopped, it costs nothing; continued, its own threads wake with it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

from perfkit.backends import get_backend
from perfkit.core.errors import CaseFailed
from perfkit.core.report import Block
from perfkit.measure.case import Case, OpenCase, Outcome
from perfkit.measure.isolate import describe_exit, pack, quiet_worker, unpack

CAN_STOP = hasattr(signal, "SIGSTOP")


class LocalWorker:
    """The case in this process: no crash safety, and idle sessions' thread pools may spin beside the one
    being timed (nothing can stop threads of this process)."""

    def __init__(self, case: Case) -> None:
        self._case = case

    def open(self) -> float:
        self._opened = OpenCase(self._case)
        return self._opened.estimate_ns

    def block(self, calls: int, rewarm: int) -> list[int]:
        return self._opened.block(calls, rewarm)

    def finish(self, samples: tuple[int, ...], blocks: tuple[Block, ...]) -> Outcome:
        return self._opened.finish(samples, blocks)

    def close(self) -> None:
        """finish() closes the session; a case that failed before it has nothing left open."""


class ProcessWorker:
    """The case in a spawned worker that keeps its session open between blocks, stopped while idle. A crash,
    a kill or a hang in any request raises CaseFailed; the worker's own errors are raised again here."""

    def __init__(self, case: Case) -> None:
        """Spawns the worker, which imports its runtime and waits: many start at once, in parallel, before
        anything is timed; `ready()` waits for that, `open()` then opens the session, one worker at a time."""
        self._timeout = case.plan.timeout_s
        ctx = mp.get_context("spawn")  # fork would copy this process's threads and onnxruntime state
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, case), daemon=True)
        self._process.start()
        child.close()
        self._spawned = False

    def ready(self) -> None:
        if not self._spawned:
            self._ask(None)
            self._spawned = True

    def open(self) -> float:
        self.ready()
        estimate: float = self._ask(("open",))
        return estimate

    def block(self, calls: int, rewarm: int) -> list[int]:
        samples: list[int] = self._ask(("block", calls, rewarm))
        return samples

    def finish(self, samples: tuple[int, ...], blocks: tuple[Block, ...]) -> Outcome:
        outcome: Outcome = self._ask(("finish", samples, blocks))
        return outcome

    def _ask(self, request: tuple | None) -> Any:
        """Continue the worker, send the request, wait for its answer, stop it again."""
        self._signal(signal.SIGCONT if CAN_STOP else None)
        try:
            if request is not None:
                self._conn.send(request)
            if not self._conn.poll(self._timeout):
                self.close()
                raise CaseFailed(f"timed out after {self._timeout:g} s (hung?) — raise --timeout if it is just slow")
            kind, payload = self._conn.recv()
        except (EOFError, OSError):  # the worker died: a crash, or killed
            self._process.join(5)
            raise CaseFailed(describe_exit(self._process.exitcode)) from None
        if kind == "ok":
            self._signal(signal.SIGSTOP if CAN_STOP else None)
        return unpack(kind, payload)

    def _signal(self, sig: signal.Signals | None) -> None:
        if sig is not None and self._process.is_alive():
            # It may end between the check and the signal: the next request says why.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid or 0, sig)

    def close(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join(5)
        self._conn.close()


def _serve(conn: Connection, case: Case) -> None:
    """The worker's loop: open and warm up, then answer block requests until finish."""
    quiet_worker()
    _die_with_parent()
    try:
        get_backend(case.target.backend)  # the runtime's import, while the other workers import theirs
        conn.send(("ok", None))
        conn.recv()
        opened = OpenCase(case)
        conn.send(("ok", opened.estimate_ns))
        while True:
            request = conn.recv()
            if request[0] == "block":
                conn.send(("ok", opened.block(request[1], request[2])))
            else:
                conn.send(("ok", opened.finish(request[1], request[2])))
                return
    except (EOFError, OSError):  # the parent went away
        return
    except BaseException as exc:  # the parent shows it as the row's reason; the worker ends anyway
        with contextlib.suppress(OSError):
            conn.send(pack(exc))
    finally:
        conn.close()


def _die_with_parent() -> None:
    """A stopped worker never sees its pipe close: if perfkit itself is killed (a CI job's timeout, SIGTERM),
    Linux kills its workers too (PR_SET_PDEATHSIG, which reaches a stopped process). Ctrl-C is the parent's to
    handle: it closes the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's cleanup is all there is
        pass


def open_worker(case: Case) -> LocalWorker | ProcessWorker:
    return ProcessWorker(case) if case.plan.isolate else LocalWorker(case)
