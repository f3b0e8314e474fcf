"""The command line: `perfkit` and its commands. Heavy imports happen inside the commands, so `--help` and
a mistyped option answer at once."""

from perfkit.cli import checking, loading, measuring, stored, tuning  # noqa: F401  (each registers its commands on the group)
from perfkit.cli.group import main

__all__ = ["main"]
