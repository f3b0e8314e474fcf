"""perfkit tune end to end with the real onnxruntime, as a user runs it: tune → perfkit-tuned.json → bench
--config opens the same session (read back from onnxruntime's own session), and run_tuned.py runs as printed.
A real search takes about a minute: marked slow, run by .ci/run after the unit tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import onnx
import onnxruntime as ort
import pytest

from perfkit.backends.ort import OrtBackend
from perfkit.files.tuned import read_config
from tests.models import conv

pytestmark = pytest.mark.slow


def perfkit(*args, cwd):
    return subprocess.run([sys.executable, "-m", "perfkit", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "PERFKIT_CACHE": str(cwd / "cache")}, timeout=600)


def test_tune_then_bench_config_then_the_snippet(tmp_path):
    onnx.save(conv(channels=16), tmp_path / "cnn.onnx")
    tuned = perfkit("tune", "cnn.onnx", "-o", "tuned", "--batch", "4", "--variants", "ort-opt:all",
                    "--time-budget", "60s", "--no-save", cwd=tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    assert "tuned: " in tuned.stdout or "the default stays: " in tuned.stdout
    written = json.loads((tmp_path / "tuned" / "perfkit-tuned.json").read_text())
    assert written["inputs"]["shapes"] == {"image": [4, 3, 8, 8]}

    config = read_config(str(tmp_path / "tuned" / "perfkit-tuned.json"))
    ours = OrtBackend().open(config.model, config.target)._session.get_session_options()
    so = ort.SessionOptions()
    enums = {"execution_mode": ort.ExecutionMode, "graph_optimization_level": ort.GraphOptimizationLevel}
    for key, value in written["session_options"].items():
        setattr(so, key, getattr(enums[key], value) if key in enums else value)
    for key, value in written["session_config"].items():
        so.add_session_config_entry(key, value)
    plain = ort.InferenceSession(str(tmp_path / "tuned" / written["model"]["path"]), so,
                                 providers=[written["provider"]]).get_session_options()
    for name in ("intra_op_num_threads", "inter_op_num_threads", "execution_mode", "graph_optimization_level",
                 "enable_cpu_mem_arena", "enable_mem_pattern"):
        assert getattr(ours, name) == getattr(plain, name), name
    for key in written["session_config"]:
        assert ours.get_session_config_entry(key) == plain.get_session_config_entry(key)

    bench = perfkit("bench", "cnn.onnx", "--config", "tuned/perfkit-tuned.json", "--quick", "--format", "json",
                    "--no-save", cwd=tmp_path)
    assert bench.returncode == 0, bench.stderr
    rows = json.loads(bench.stdout)["results"]
    assert [r["model"]["lineage"][-1:] for r in rows] == [[], [*written["model"]["lineage"], "tuned"][-1:]]
    for key, value in written["session_config"].items():
        assert rows[1]["settings"][key] == value

    snippet = subprocess.run([sys.executable, str(tmp_path / "tuned" / "run_tuned.py")], capture_output=True,
                             text=True, timeout=120)
    assert snippet.returncode == 0, snippet.stderr
    assert snippet.stdout.startswith("median ") and "perfkit measured" in snippet.stdout
