"""What users read, pinned: the table, markdown, csv and json renderings of a fixed report (tests/golden/).

The report is tests/golden/report.json, a run of the fake backend (tests/fakes.py) with the machine's figures
fixed; tests/test_bench_fake.py checks that the flow still makes exactly that report. After a deliberate change
to what users see, rewrite the files with `PERFKIT_UPDATE_GOLDEN=1 pytest tests/output/test_golden.py
tests/test_bench_fake.py` and read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from perfkit.core.report import from_json, to_json
from perfkit.output.render import render

GOLDEN = Path(__file__).parent.parent / "golden"
UPDATE = os.environ.get("PERFKIT_UPDATE_GOLDEN") == "1"
FORMATS = {"table": "report.table.txt", "markdown": "report.md", "csv": "report.csv", "json": "report.json"}


def golden_report():
    return from_json((GOLDEN / "report.json").read_text(), "report.json")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_fixed_report_renders_as_its_golden_file(fmt):
    text = render(golden_report(), fmt, width=200).encode()  # bytes: csv lines end in \r\n
    if UPDATE:
        (GOLDEN / FORMATS[fmt]).write_bytes(text)
    assert text == (GOLDEN / FORMATS[fmt]).read_bytes()


def test_the_golden_report_round_trips_through_json():
    report = golden_report()
    assert from_json(to_json(report), "again") == report
