"""The progress bar the scheduler redraws between blocks, on a terminal only."""

from perfkit.cli.progress import Progress
from perfkit.measure.interleave import Tick


def test_the_bar_shows_rounds_rows_and_time_left_and_clears(capsys):
    bar = Progress()
    bar.tty = True
    bar.tick(Tick(round=4, rounds=20, rows=3, elapsed_s=2.0, left_s=7.6))
    shown = capsys.readouterr().err
    assert shown.startswith("\r████░") and "round 5/20 · 3 rows · ~8 s left" in shown
    bar.tick(Tick(round=25, rounds=20, rows=2, elapsed_s=9.0, left_s=None, group=2, groups=3))
    assert "narrowing the intervals (--max-time caps it) · group 2/3" in capsys.readouterr().err
    bar.step("building")
    assert capsys.readouterr().err == "\r\x1b[K" + "building …\n"


def test_nothing_is_drawn_when_stderr_is_not_a_terminal(capsys):
    bar = Progress()
    bar.tty = False
    bar.tick(Tick(round=1, rounds=20, rows=1, elapsed_s=0.1, left_s=2.0))
    bar.step("building")
    assert capsys.readouterr().err == ""
