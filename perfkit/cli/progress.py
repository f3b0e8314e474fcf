"""Progress on stderr when it is a terminal: plain lines for the steps, and one bar the interleaving scheduler
redraws itself between blocks (no thread of ours runs beside a timed call)."""

from __future__ import annotations

import sys

import click

from perfkit.measure.interleave import Tick

WIDTH = 24


class Progress:
    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._bar = False

    def step(self, text: str) -> None:
        if self.tty:
            self.clear()
            click.echo(f"{text} …", err=True)

    def tick(self, t: Tick) -> None:
        if not self.tty:
            return
        done = min(t.round / max(t.rounds, 1), 1.0)
        filled = int(WIDTH * done)
        left = f"~{t.left_s:.0f} s left" if t.left_s is not None else "narrowing the intervals (--max-time caps it)"
        group = f" · group {t.group}/{t.groups}" if t.groups > 1 else ""
        sys.stderr.write(f"\r{'█' * filled}{'░' * (WIDTH - filled)} round {t.round + 1}/{t.rounds} · "
                         f"{t.rows} rows · {left}{group}\x1b[K")
        sys.stderr.flush()
        self._bar = True

    def clear(self) -> None:
        if self._bar:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._bar = False
