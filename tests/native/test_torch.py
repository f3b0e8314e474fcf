"""PyTorch models: TorchScript, torch.export programs, state dicts with a factory, whole modules (trusted)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from perfkit.convert import run_convert  # noqa: E402
from perfkit.core.errors import PerfkitError  # noqa: E402
from perfkit.core.spec import InputShape  # noqa: E402
from perfkit.native.conversion import convert  # noqa: E402
from perfkit.native.detect import prepare_native  # noqa: E402
from tests.torch_models import VOCAB, TwoHeads, tiny_cnn, token_model  # noqa: E402

SHAPE = ("x=1x3x16x16",)


def converted(tmp_path, path, **kw):
    kw.setdefault("shapes", SHAPE)
    return run_convert(str(path), str(tmp_path / "out.onnx"), cache_dir=str(tmp_path / "c"), isolate=False,
                       batch=4, **kw)


def test_torchscript_converts_with_a_free_batch_and_matches(tmp_path):
    torch.jit.save(torch.jit.trace(tiny_cnn().eval(), torch.rand(1, 3, 16, 16)), tmp_path / "m.pt")
    lines, parity = converted(tmp_path, tmp_path / "m.pt")
    assert parity.ok, lines
    assert "x float32 [N, 3, 16, 16]" in lines[1] and "output float32 [N, 5]" in lines[2]
    assert "TorchScript exporter" in lines[0]  # a ScriptModule goes the TorchScript way


def test_a_state_dict_needs_its_factory(tmp_path, monkeypatch):
    torch.save(tiny_cnn().state_dict(), tmp_path / "w.pt")
    with pytest.raises(PerfkitError, match="--factory"):
        converted(tmp_path, tmp_path / "w.pt")
    lines, parity = converted(tmp_path, tmp_path / "w.pt", factory="tests.torch_models:tiny_cnn")
    assert parity.ok and "dynamo exporter" in lines[0]
    with pytest.raises(PerfkitError, match="does not fit"):
        converted(tmp_path, tmp_path / "w.pt", factory="tests.torch_models:wrong_architecture")
    with pytest.raises(PerfkitError, match="cannot import"):
        converted(tmp_path, tmp_path / "w.pt", factory="tests.no_such_module:make")


def test_a_whole_pickled_module_loads_only_when_trusted(tmp_path, monkeypatch):
    monkeypatch.delenv("PERFKIT_TRUST", raising=False)
    torch.save(tiny_cnn(), tmp_path / "full.pt")
    with pytest.raises(PerfkitError) as err:
        converted(tmp_path, tmp_path / "full.pt")
    assert "tests.torch_models.TinyCNN" in err.value.what and "--trust" in err.value.fix
    _, parity = converted(tmp_path, tmp_path / "full.pt", trust=True)
    assert parity.ok


def test_an_exported_program_keeps_its_own_signature(tmp_path):
    program = torch.export.export(tiny_cnn().eval(), (torch.rand(2, 3, 16, 16),))
    torch.export.save(program, tmp_path / "m.pt2")
    lines, parity = converted(tmp_path, tmp_path / "m.pt2", shapes=())  # no --shape: the program knows
    assert parity.ok, lines
    assert "x float32 [2, 3, 16, 16]" in lines[1]


def test_two_inputs_and_a_tuple_of_outputs_keep_their_names_and_order(tmp_path):
    torch.manual_seed(0)
    torch.save(TwoHeads().state_dict(), tmp_path / "two.pt")
    native = prepare_native(str(tmp_path / "two.pt"), False, "tests.torch_models:TwoHeads")
    done = convert(native, cache_dir=str(tmp_path / "c"), shapes=(InputShape("x", (1, 6)), InputShape("y", (1, 2))),
                   isolate=False)
    assert [p.name for p in done.native.inputs] == ["x", "y"]
    assert done.native.outputs == ("output_0", "output_1")
    lines, parity = converted(tmp_path, tmp_path / "two.pt", factory="tests.torch_models:TwoHeads",
                              shapes=("x=1x6", "y=1x2"))
    assert parity.ok and [a.name for a in parity.outputs] == ["output_0", "output_1"]


def test_a_module_without_a_shape_asks_for_one(tmp_path):
    torch.save(tiny_cnn().state_dict(), tmp_path / "w.pt")
    with pytest.raises(PerfkitError, match="--shape"):
        converted(tmp_path, tmp_path / "w.pt", factory="tests.torch_models:tiny_cnn", shapes=())


@pytest.mark.parametrize("content, what", [
    (b"PK\x03\x04 cut short", "damaged zip"),
    (None, "not one PyTorch writes"),
    (b"\x00\x01\x02 not a model at all", "not a model format"),
])
def test_files_that_are_not_pytorch_archives_get_one_line(tmp_path, content, what):
    path = tmp_path / "model.pt"
    if content is None:
        import zipfile

        with zipfile.ZipFile(path, "w") as z:
            z.writestr("readme.txt", "hello")
    else:
        path.write_bytes(content)
    with pytest.raises(PerfkitError, match=what):
        prepare_native(str(path), False, None)


def test_the_native_session_runs_in_inference_mode_with_the_feeds_of_the_conversion(tmp_path):
    from perfkit.backends.torch import TorchBackend
    from perfkit.core.spec import Target

    torch.save(tiny_cnn().state_dict(), tmp_path / "w.pt")
    native = convert(prepare_native(str(tmp_path / "w.pt"), False, "tests.torch_models:tiny_cnn"),
                     cache_dir=str(tmp_path / "c"), shapes=(InputShape("x", (1, 3, 16, 16)),), isolate=False).native
    session = TorchBackend().open(native, Target("torch", "cpu", threads=1))
    try:
        prepared = session.prepare({"x": np.random.default_rng(0).random((3, 3, 16, 16), dtype=np.float32)})
        assert torch.is_inference_mode_enabled()
        (out,) = session.run(prepared)
        assert out.shape == (3, 5)
        assert session.settings["intra_op_threads"] == "1" and session.providers == ("torch:cpu",)
    finally:
        session.close()
    assert not torch.is_inference_mode_enabled()


def test_a_legacy_torch_save_pickle_is_a_pytorch_file_not_a_scikit_learn_one(tmp_path):
    torch.save(tiny_cnn().state_dict(), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    native = prepare_native(str(tmp_path / "old.pt"), False, "tests.torch_models:tiny_cnn")
    assert (native.framework, native.format) == ("torch", "torch-save")
    _, parity = converted(tmp_path, tmp_path / "old.pt", factory="tests.torch_models:tiny_cnn")
    assert parity.ok


def test_an_op_without_an_onnx_export_is_named(tmp_path):
    from tests.torch_models import UsesCustomOp

    torch.save(UsesCustomOp(), tmp_path / "custom.pt")
    with pytest.raises(PerfkitError) as err:
        converted(tmp_path, tmp_path / "custom.pt", trust=True, shapes=("x=1x4",))
    assert err.value.what == "the op perfkit_tests::sharpen has no ONNX export"
    assert not (tmp_path / "out.onnx").exists()


def test_a_file_of_a_lone_tensor_is_no_model(tmp_path):
    torch.save(torch.ones(3), tmp_path / "t.pt")
    with pytest.raises(PerfkitError, match="holds a Tensor, not a module or a state dict"):
        converted(tmp_path, tmp_path / "t.pt")


@pytest.mark.slow  # the console script in a fresh process importing torch: about 11 s
def test_a_factory_beside_the_user_is_found_from_the_console_script(tmp_path):
    """`perfkit` runs from the venv's bin folder, so the user's working folder is not on sys.path by itself."""
    import shutil
    import subprocess

    (tmp_path / "my_models.py").write_text("import torch\n\ndef build():\n    return torch.nn.Linear(4, 2)\n")
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(4, 2).state_dict(), tmp_path / "w.pt")
    done = subprocess.run([shutil.which("perfkit"), "convert", "w.pt", "--factory", "my_models:build", "--shape",
                           "x=1x4", "-o", "w.onnx", "--cache-dir", "cache"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "parity: ok" in done.stdout and (tmp_path / "w.onnx").is_file()


def test_a_failed_conversion_leaves_no_cache_folders_behind(tmp_path):
    torch.save(tiny_cnn().state_dict(), tmp_path / "w.pt")
    with pytest.raises(PerfkitError, match="--factory"):
        converted(tmp_path, tmp_path / "w.pt")  # a state dict without its factory
    assert not (tmp_path / "c").exists() and not (tmp_path / "out.onnx").exists()


def traced_token_model(path):
    ids = torch.randint(0, VOCAB, (1, 16))
    torch.jit.save(torch.jit.trace(token_model(), (ids,), strict=False), path)
    return path


def test_token_ids_given_as_int64_stay_below_the_vocabulary_and_convert(tmp_path):
    from perfkit.backends.torch import example_arrays, index_limits, input_ports

    path = traced_token_model(tmp_path / "tokens.pt")
    lines, parity = converted(tmp_path, path, shapes=("input_ids=1x16:int64",))
    assert parity.ok, lines
    assert "input_ids int64 [N, 16]" in lines[1]
    model = torch.jit.load(path)
    native = prepare_native(str(path), False, None)
    ports = input_ports(model, native, (InputShape("input_ids", (1, 16), "int64"),), None)
    (ids,) = example_arrays(ports, 2, index_limits(model, ports))
    assert index_limits(model, ports) == {"input_ids": VOCAB} and 1 < ids.max() < VOCAB


def test_inputs_named_like_token_ids_are_int64_without_a_dtype(tmp_path):
    lines, parity = converted(tmp_path, traced_token_model(tmp_path / "tokens.pt"), shapes=("input_ids=1x16",))
    assert parity.ok and "input_ids int64 [N, 16]" in lines[1]
    assert "(input_ids integers in [1, 8])" in lines[3] and "uniform" not in lines[3]  # ids, not floats


def test_a_traced_module_returning_a_dict_keeps_its_output_names(tmp_path):
    lines, parity = converted(tmp_path, traced_token_model(tmp_path / "tokens.pt"), shapes=("input_ids=1x16",))
    assert [a.name for a in parity.outputs] == ["logits", "last_hidden_state"] and parity.ok
    assert "logits float32 [N, 3], last_hidden_state float32 [N, 16, 8]" in lines[2]


def test_a_module_returning_a_dict_goes_through_the_dynamo_exporter_with_its_names(tmp_path):
    torch.save(token_model().state_dict(), tmp_path / "w.pt")
    lines, parity = converted(tmp_path, tmp_path / "w.pt", factory="tests.torch_models:token_model",
                              shapes=("input_ids=1x16",))
    assert "dynamo exporter" in lines[0] and parity.ok
    assert [a.name for a in parity.outputs] == ["logits", "last_hidden_state"]


def test_a_conversion_that_fails_names_its_root_cause_on_one_line(tmp_path):
    with pytest.raises(PerfkitError) as err:
        converted(tmp_path, traced_token_model(tmp_path / "tokens.pt"), shapes=("input_ids=1x16:float32",))
    line = str(err.value)
    assert "\n" not in line and "input_ids float32 [1x16]" in line
    assert "Expected tensor for argument #1 'indices' to have one of the following scalar types: Long" in line
    assert "--shape input_ids=1x16:int64" in err.value.fix


def test_the_torchscript_warm_up_keeps_the_profiling_runs_out_of_the_timed_calls(tmp_path):
    from perfkit.core.spec import Plan, Target
    from perfkit.measure.case import Case, OpenCase

    path = traced_token_model(tmp_path / "tokens.pt")
    native = convert(prepare_native(str(path), False, None), cache_dir=str(tmp_path / "c"),
                     shapes=(InputShape("input_ids", (1, 16)),), isolate=False).native
    plan = Plan(warmup_calls=1, warmup_time_s=0.0, warmup_max_s=30.0)  # on its own, one call of warm-up
    feeds = ({"input_ids": np.ones((1, 16), dtype=np.int64)},)
    was = torch._C._jit_set_num_profiled_runs(3)
    try:
        opened = OpenCase(Case(native.path, Target("torch", "cpu", threads=1), feeds, plan, native=native))
        assert opened.warmup_calls >= 3 + 1 + 1  # three profiled, the optimising call, and one from the warm-up
        opened._session._model.get_debug_state()  # raises while the executor has no optimised plan yet
        opened.finish(tuple(opened.block(3)))
    finally:
        torch._C._jit_set_num_profiled_runs(was)


def test_a_module_that_does_not_jit_warms_up_as_before(tmp_path):
    from perfkit.core.spec import Plan, Target
    from perfkit.measure.case import Case, OpenCase

    torch.save(token_model().state_dict(), tmp_path / "w.pt")
    native = convert(prepare_native(str(tmp_path / "w.pt"), False, "tests.torch_models:token_model"),
                     cache_dir=str(tmp_path / "c"), shapes=(InputShape("input_ids", (1, 16)),), isolate=False).native
    plan = Plan(warmup_calls=1, warmup_time_s=0.0)
    opened = OpenCase(Case(native.path, Target("torch", "cpu", threads=1),
                           ({"input_ids": np.ones((1, 16), dtype=np.int64)},), plan, native=native))
    assert opened.warmup_calls == 1
    opened.finish(())


def test_the_ops_of_a_causal_lm_s_packed_sequence_check_convert(tmp_path):
    from tests.torch_models import PackedPositions

    positions = torch.tensor([[0, 1, 2, 0, 1, 5]])
    torch.jit.save(torch.jit.trace(PackedPositions(), (positions,)), tmp_path / "packed.pt")
    lines, parity = converted(tmp_path, tmp_path / "packed.pt", shapes=("position_ids=1x6",))
    assert parity.ok, lines


def test_a_traced_module_is_exported_on_the_users_inputs_at_their_batch(tmp_path):
    from tests.torch_models import FixedBatch

    torch.manual_seed(0)
    torch.jit.save(torch.jit.trace(FixedBatch().eval(), torch.rand(1, 8)), tmp_path / "fixed.pt")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "x1.npz", x=rng.random((1, 8), dtype=np.float32))
    lines, parity = converted(tmp_path, tmp_path / "fixed.pt", shapes=(), inputs=str(tmp_path / "x1.npz"))
    assert parity.ok and "x1.npz sample" in lines[3], lines
    np.savez(tmp_path / "x3.npz", x=rng.random((3, 8), dtype=np.float32))
    with pytest.raises(PerfkitError) as err:  # the user's batch, not EXAMPLE_BATCH: and no call for --inputs
        converted(tmp_path, tmp_path / "fixed.pt", shapes=(), inputs=str(tmp_path / "x3.npz"))
    assert "your --inputs (x float32 [3x8])" in err.value.what and "--inputs data.npz" not in err.value.fix


def test_a_wrong_element_type_is_answered_with_the_type_the_error_names(tmp_path):
    from perfkit.backends import torch as tb
    from perfkit.core.model import Port
    from perfkit.native.exporters import _next_step

    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(8, 4)).double()), tmp_path / "dbl.pt")
    with pytest.raises(PerfkitError) as err:
        converted(tmp_path, tmp_path / "dbl.pt", shapes=("x=1x8",))
    assert "Float and Double" in err.value.what and "--shape x=1x8:float64" in err.value.fix
    ports = (Port("x", "float32", (None, 8)),)
    assert ":float16" in _next_step("expected scalar type Half but found Float", ports, tb)
    assert ":bfloat16" in _next_step("Input type (torch.FloatTensor) and weight type (torch.BFloat16Tensor)"
                                     " should be the same dtype", ports, tb)
    assert ":DTYPE" in _next_step("mat1 and mat2 must have the same dtype", ports, tb)
    assert _next_step("got Float and Double dtype", ports, tb, True) == "store x as float64 in the --inputs file"


def test_the_parity_line_says_what_the_synthetic_feeds_held():
    from perfkit.convert import fed_values

    rng = np.random.default_rng(0)
    feeds = tuple({"input_ids": rng.integers(1, 8, (2, 6), endpoint=True), "attention_mask": np.ones((2, 6)),
                   "pixels": rng.random((2, 3), dtype=np.float32), "extra": rng.random(2)} for _ in range(4))
    assert fed_values(feeds) == "input_ids integers in [1, 8]; attention_mask all 1; floats uniform [0, 1)"
