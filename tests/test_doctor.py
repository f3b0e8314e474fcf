"""perfkit doctor: the machine's checks alone, and with a model its A/A check and floor."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner

from perfkit.cli import main


def test_doctor_without_a_model_lists_every_check_in_under_two_seconds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    done = CliRunner().invoke(main, ["doctor"])
    assert done.exit_code == 0 and time.perf_counter() - start < 2
    for check in ("governor", "load", "cpu users", "steal", "memory", "threads"):
        assert check in done.stdout
    assert not (tmp_path / "results").exists()  # nothing written without a model


def test_doctor_with_a_model_runs_the_aa_check_and_keeps_the_floor(relu_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(main, ["doctor", relu_model, "--min-time", "0.3", "--no-isolate"])
    assert done.exit_code == 0, done.output
    assert "A/A: " in done.stdout and "interleaved rounds" in done.stdout
    assert "smallest difference this machine can resolve for this model at 95 % confidence" in done.stdout
    (kept,) = json.loads((tmp_path / "results" / "doctor.json").read_text())
    assert kept["model"] == relu_model and 0 < kept["floor"] < 1 and kept["rounds"] >= 10
