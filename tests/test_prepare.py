"""The pipeline the flows share, on the fake backend: what is compared, with what, and what gets built."""

from perfkit.options import make_spec
from perfkit.prepare import ReferenceRun, build_variants, prepare, references
from perfkit.transforms.cache import Broken, Variant
from tests.conftest import FAST


def spec(model, tmp_path, **options):
    return make_spec(model, plan=FAST, results_dir=None, cache_dir=str(tmp_path / "c"), **options)


def test_without_variants_nothing_is_compared(fake_backend, tmp_path):
    prepared = prepare(spec(fake_backend.write_model(tmp_path / "m.onnx", 1000), tmp_path))
    assert not prepared.compared and prepared.feeds[0].checks == ()
    assert references(prepared) == (ReferenceRun(None),)
    assert prepared.chains == () and prepared.calibration.feeds == ()


def test_with_variants_every_row_is_compared_with_the_model_as_written(fake_backend, tmp_path):
    model = fake_backend.write_model(tmp_path / "m.onnx", 1000, offset=0.25)
    prepared = prepare(spec(model, tmp_path, variants=("fast",), batch=(2, 4)))
    assert [f.shapes.batch for f in prepared.feeds] == [2, 4] and len(prepared.feeds[0].checks) == 8
    said = []
    first = references(prepared, said.append)[0].outputs
    assert said == [f"reference outputs of {model} on 8 feeds"]
    assert first.names == ("y",) and len(first.per_feed) == 8
    assert (first.per_feed[0][0] == prepared.feeds[0].checks[0]["x"] + 0.25).all()  # the fake's own outputs


def test_a_reference_that_cannot_run_is_named_and_nothing_is_compared(fake_backend, tmp_path):
    model = fake_backend.write_model(tmp_path / "m.onnx", 1000, refuses="no such kernel")
    (ref,) = references(prepare(spec(model, tmp_path, variants=("fast",))), fall_back_to_conversion=True)
    assert ref == ReferenceRun(None, error="RuntimeError: no such kernel")  # an ONNX model has nothing to fall to


def test_static_quantization_gets_calibration_feeds_apart_from_the_check_feeds(fake_backend, tmp_path):
    model = fake_backend.write_model(tmp_path / "m.onnx", 1000)
    prepared = prepare(spec(model, tmp_path, variants=("int8-static",)))
    calibration = prepared.calibration
    assert calibration.synthetic and calibration.source == "32 synthetic samples (seed 0)"
    assert not any((c["x"] == f["x"]).all() for c in calibration.feeds for f in prepared.feeds[0].checks)


def test_each_chain_is_built_once_and_one_that_breaks_is_a_broken_entry(fake_backend, tmp_path):
    model = fake_backend.write_model(tmp_path / "m.onnx", 1000)
    prepared = prepare(spec(model, tmp_path, variants=("fast", "broken", "fast")))
    built = build_variants(prepared, None, (), lambda _: None)
    assert [type(b) for b in built] == [Variant, Broken]
    assert built[1] == Broken(("broken",), "failed", "building broken: RuntimeError: this transform always breaks")
