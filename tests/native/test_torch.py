"""PyTorch models: TorchScript, torch.export programs, state dicts with a factory, whole modules (trusted)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from perfkit.convert import run_convert  # noqa: E402
from perfkit.core.errors import PerfkitError  # noqa: E402
from perfkit.native.conversion import convert  # noqa: E402
from perfkit.native.detect import prepare_native  # noqa: E402
from tests.torch_models import TwoHeads, tiny_cnn  # noqa: E402

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
    done = convert(native, cache_dir=str(tmp_path / "c"), shapes=(("x", (1, 6)), ("y", (1, 2))), isolate=False)
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
                     cache_dir=str(tmp_path / "c"), shapes=(("x", (1, 3, 16, 16)),), isolate=False).native
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
