"""perfkit-tuned.json both ways: onnxruntime's own names written, a plain onnxruntime script applying them as
written gets the session perfkit opens, bad configs are one clear error, and a config from elsewhere warns."""

from __future__ import annotations

import json
from dataclasses import replace

import onnx
import onnxruntime as ort
import pytest

from perfkit.backends.ort import OrtBackend
from perfkit.core.errors import PerfkitError
from perfkit.core.records import Environment, Ratio
from perfkit.core.search import TunedConfig
from perfkit.core.spec import Target
from perfkit.files.onnx_file import open_onnx
from perfkit.files.tuned import differences, read_config, write_folder
from perfkit.measure.env import fingerprint
from tests.models import mlp

TUNED = Target(threads=1, opt_level="extended",
               session_options=(("execution_mode", "ORT_PARALLEL"), ("inter_op_num_threads", "2"),
                                ("enable_mem_pattern", "0")),
               session_config=(("session.intra_op.allow_spinning", "0"), ("session.set_denormal_as_zero", "1")))


def config_for(path: str, target: Target = TUNED, env: Environment | None = None) -> TunedConfig:
    model, _ = open_onnx(path)
    return TunedConfig(model=path, model_digest=model.digest, lineage=(), tuned_from=path,
                       tuned_from_digest=model.digest, target=target, shapes=(("x", (2, 16)),), batch=2,
                       objective="median", speedup=Ratio(1.3, 1.2, 1.4, True, 30), latency_ns=1e5,
                       default_latency_ns=1.3e5, budget="cos>=0.99", accuracy=(), environment=env or fingerprint(),
                       perfkit_version="test", created="now")


@pytest.fixture
def written(tmp_path):
    onnx.save(mlp(), tmp_path / "m.onnx")
    import numpy as np

    return write_folder(tmp_path / "tuned", config_for(str(tmp_path / "m.onnx")),
                        {"x": np.ones((2, 16), np.float32)})


def test_the_config_reads_back_to_the_same_target(written):
    assert read_config(str(written)).target == TUNED


def test_a_plain_onnxruntime_script_applying_the_json_gets_the_session_perfkit_opens(written):
    data = json.loads(written.read_text())
    so = ort.SessionOptions()
    for key, value in data["session_options"].items():  # as a user's script would, by onnxruntime's names
        enum = {"execution_mode": ort.ExecutionMode, "graph_optimization_level": ort.GraphOptimizationLevel}
        setattr(so, key, getattr(enum[key], value) if key in enum else value)
    for key, value in data["session_config"].items():
        so.add_session_config_entry(key, value)
    plain = ort.InferenceSession(str(written.parent / data["model"]["path"]), so, providers=[data["provider"]])
    config = read_config(str(written))
    ours = OrtBackend().open(config.model, config.target)._session
    for session in (plain, ours):
        got = session.get_session_options()
        assert (got.intra_op_num_threads, got.inter_op_num_threads) == (1, 2)
        assert got.execution_mode == ort.ExecutionMode.ORT_PARALLEL
        assert got.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        assert got.enable_mem_pattern is False
        assert got.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert got.get_session_config_entry("session.set_denormal_as_zero") == "1"


def test_the_session_records_what_onnxruntime_holds(written):
    config = read_config(str(written))
    settings = OrtBackend().open(config.model, config.target).settings
    assert settings["execution_mode"] == "ORT_PARALLEL" and settings["enable_mem_pattern"] == "0"
    assert settings["session.intra_op.allow_spinning"] == "0"


def test_the_folder_holds_the_model_the_snippet_and_its_feed(written):
    names = sorted(p.name for p in written.parent.iterdir())
    assert names == ["inputs.npz", "m.onnx", "perfkit-tuned.json", "run_tuned.py"]
    snippet = (written.parent / "run_tuned.py").read_text()
    assert "so.execution_mode = ort.ExecutionMode.ORT_PARALLEL" in snippet
    assert "so.add_session_config_entry('session.intra_op.allow_spinning', '0')" in snippet
    compile(snippet, "run_tuned.py", "exec")


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: "not json", "not JSON"),
    (lambda d: {**d, "format": "other"}, "not a perfkit-tuned config"),
    (lambda d: {**d, "version": 99}, "config version 99 is newer than this perfkit reads"),
    (lambda d: {**d, "model": {**d["model"], "path": "gone.onnx"}}, "its model file gone.onnx is not there"),
    (lambda d: {**d, "session_options": {"enable_turbo": True}}, "session option enable_turbo=True is not one"),
    (lambda d: {**d, "session_options": {"execution_mode": "FAST"}}, "session option execution_mode='FAST'"),
    (lambda d: {**d, "provider": "MagicExecutionProvider"}, "provider MagicExecutionProvider is not one"),
    (lambda d: {k: v for k, v in d.items() if k != "inputs"}, "config is damaged or incomplete"),
    (lambda d: {**d, "session_config": {"session.intra_op.allow_spinning": "maybe"}},
     "session config entry session.intra_op.allow_spinning='maybe' is not one perfkit applies"),
    (lambda d: {**d, "session_config": {"no.such.key": "1"}}, "session config entry no.such.key='1'"),
    (lambda d: {**d, "session_options": {"intra_op_num_threads": -1}}, "intra_op_num_threads=-1 is not a thread"),
    (lambda d: {**d, "session_options": {"inter_op_num_threads": 0}}, "session option inter_op_num_threads=0"),
    (lambda d: {**d, "modes": ["warp"]}, "mode 'warp' is not one perfkit runs"),
    (lambda d: {**d, "provider_options": {"foo": "1"}}, "provider option 'foo' is not one of CPUExecutionProvider's"),
])
def test_a_bad_config_is_one_clear_error(written, edit, match):
    data = edit(json.loads(written.read_text()))
    written.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(PerfkitError, match=match):
        read_config(str(written))


def test_a_changed_model_and_another_machine_are_named(written):
    config = read_config(str(written))
    elsewhere = replace(config.environment, cpu_model="Other CPU", logical_cores=64)
    found = differences(replace(config, environment=elsewhere), "0" * 64, fingerprint(), "f" * 64)
    assert found[0].startswith("the tuned model file changed since it was tuned")
    assert found[1].startswith("this model is not the one the config was tuned from")
    assert any("tuned on another machine: CPU Other CPU there" in f for f in found)
    assert any("logical cores 64 there" in f for f in found)


def test_the_same_model_on_the_same_machine_has_no_difference(written):
    config = read_config(str(written))
    assert differences(config, config.tuned_from_digest, fingerprint(), config.model_digest) == []


def test_a_model_with_external_data_under_a_relative_path_is_copied_whole(tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cache").mkdir()
    onnx.save(mlp(), "cache/m.onnx", save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    written = write_folder(tmp_path / "tuned", config_for("cache/m.onnx"), {"x": np.ones((2, 16), np.float32)})
    assert (written.parent / "m.onnx.data").is_file()
    ort.InferenceSession(str(written.parent / "m.onnx"), providers=["CPUExecutionProvider"])


def test_the_snippet_times_an_iobinding_config_as_its_row_ran(written):
    from perfkit.files.tuned import snippet

    config = read_config(str(written))
    gpu = replace(config.target, device="cuda", modes=("iobinding",), provider_options=(("device_id", "1"),))
    source = snippet(replace(config, target=gpu))
    compile(source, "run_tuned.py", "exec")
    assert "ort.OrtValue.ortvalue_from_numpy(value, 'cuda', 1)" in source
    assert "session.run_with_iobinding(binding)" in source and "binding.synchronize_outputs()" in source
    assert "'CUDAExecutionProvider', {'device_id': '1'}" in source


def test_an_input_named_file_is_saved_in_the_feed(tmp_path):
    import numpy as np

    from perfkit.files.tuned import save_feed

    save_feed(tmp_path / "inputs.npz", {"file": np.arange(3), "x": np.ones((2, 2), np.float32)})
    loaded = np.load(tmp_path / "inputs.npz")
    assert loaded["file"].tolist() == [0, 1, 2] and loaded["x"].shape == (2, 2)


def test_tuned_from_is_written_as_an_absolute_path(written):
    assert json.loads(written.read_text())["tuned_from"]["path"].startswith("/")


def test_bench_config_at_other_shapes_than_tuned_says_so(written, tmp_path):
    from perfkit.bench import run_warnings
    from perfkit.core.spec import Plan
    from perfkit.options import make_spec
    from perfkit.prepare import prepare

    config = read_config(str(written))
    same = prepare(make_spec(config.tuned_from, config=str(written), results_dir=None, plan=Plan()))
    assert not any("tuned at" in w for w in run_warnings(fingerprint(), same))
    other = prepare(make_spec(config.tuned_from, config=str(written), batch=(4,), results_dir=None, plan=Plan()))
    assert any(w.endswith("tuned at x 2x16; measured here at other shapes, where its settings may not be the fastest")
               for w in run_warnings(fingerprint(), other))
