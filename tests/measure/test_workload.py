import numpy as np
import pytest

from perfkit.core.errors import PerfkitError
from perfkit.core.model import Signature, TensorInfo
from perfkit.core.spec import InputShape, Workload
from perfkit.measure.workload import (
    INT_HIGH,
    INT_LOW,
    OTHER_DIM_DEFAULT,
    calibration_feeds,
    feed_set,
    load_inputs,
    numpy_dtype,
    read_samples,
    resolve_shapes,
    synthesize,
)


def sig(*inputs: TensorInfo) -> Signature:
    return Signature(tuple(inputs), ())


BERT = sig(TensorInfo("ids", "int64", ("batch", "seq")), TensorInfo("mask", "int64", ("batch", "seq")))


def test_defaults_fill_batch_with_1_and_other_dims_with_the_stated_default():
    shapes = resolve_shapes(BERT, Workload(), "m.onnx")
    assert dict(shapes.shapes) == {"ids": (1, OTHER_DIM_DEFAULT), "mask": (1, OTHER_DIM_DEFAULT)}
    assert shapes.filled == ("batch=1", f"seq={OTHER_DIM_DEFAULT}") and shapes.batch == 1


def test_batch_and_dims_are_applied_consistently_across_inputs():
    shapes = resolve_shapes(BERT, Workload(batch=8, dims=(("seq", 128),)), "m.onnx")
    assert dict(shapes.shapes) == {"ids": (8, 128), "mask": (8, 128)}
    assert shapes.filled == () and shapes.batch == 8


def test_unnamed_dims_are_named_in_the_warning():
    shapes = resolve_shapes(sig(TensorInfo("x", "float32", (None, 3, None))), Workload(), "m.onnx")
    assert dict(shapes.shapes) == {"x": (1, 3, OTHER_DIM_DEFAULT)}
    assert shapes.filled == ("x[0]=1", f"x[2]={OTHER_DIM_DEFAULT}")


def test_shape_overrides_and_feeds_named_dims_to_other_inputs():
    shapes = resolve_shapes(BERT, Workload(shapes=(InputShape("ids", (2, 7)),)), "m.onnx")
    assert dict(shapes.shapes) == {"ids": (2, 7), "mask": (2, 7)}


def test_a_shape_may_state_the_input_s_own_element_type():
    shapes = resolve_shapes(BERT, Workload(shapes=(InputShape("ids", (2, 7), "int64"),)), "m.onnx")
    assert dict(shapes.shapes) == {"ids": (2, 7), "mask": (2, 7)}


def test_zero_batch_is_allowed():
    assert resolve_shapes(BERT, Workload(batch=0), "m.onnx").batch == 0


@pytest.mark.parametrize("wl,match", [
    (Workload(dims=(("nope", 3),)), "no input has a dim of that name"),
    (Workload(batch=2, dims=(("batch", 3),)), "is the batch dim, also set by --batch"),
    (Workload(shapes=(InputShape("nope", (1,)),)), "no such input"),
    (Workload(shapes=(InputShape("ids", (1, 2, 3)),)), "has rank 3"),
    (Workload(shapes=(InputShape("ids", (1, 2), "float32"),)), "gives float32, the model's input is int64"),
])
def test_conflicting_options(wl, match):
    with pytest.raises(PerfkitError, match=match):
        resolve_shapes(BERT, wl, "m.onnx")


def test_fixed_first_dim_refuses_batch_sweep():
    fixed = sig(TensorInfo("x", "float32", (1, 3, 8, 8)))
    with pytest.raises(PerfkitError, match="fixed first dim of 1"):
        resolve_shapes(fixed, Workload(batch=4), "m.onnx")


def test_unknown_rank_needs_a_shape():
    unknown = sig(TensorInfo("x", "float32", None))
    with pytest.raises(PerfkitError, match="unknown rank — give its shape with --shape x="):
        resolve_shapes(unknown, Workload(), "m.onnx")
    given = Workload(shapes=(InputShape("x", (2, 2)),))
    assert dict(resolve_shapes(unknown, given, "m.onnx").shapes) == {"x": (2, 2)}


def test_non_tensor_inputs_are_refused():
    with pytest.raises(PerfkitError, match="is a sequence, not a tensor"):
        resolve_shapes(sig(TensorInfo("xs", "", None, "sequence")), Workload(), "m.onnx")


ALL_TYPES = ["float16", "float32", "float64", "bfloat16", "float8e4m3fn", "int8", "int16", "int32", "int64",
             "uint8", "uint16", "uint32", "uint64", "bool"]


@pytest.mark.parametrize("dtype", ALL_TYPES)
def test_every_type_is_synthesised_in_its_documented_range(dtype):
    s = sig(TensorInfo("x", dtype, (64,)))
    (feed,) = synthesize(s, resolve_shapes(s, Workload(), "m"), seed=0)
    x = feed["x"]
    assert x.shape == (64,) and x.dtype == numpy_dtype(dtype)
    if dtype == "bool":
        assert x.any() and not x.all()
    elif dtype.startswith(("int", "uint")):
        assert x.min() >= INT_LOW and x.max() <= INT_HIGH
    else:
        values = x.astype(np.float32)
        assert (values >= 0).all() and (values <= 1).all()


def test_same_seed_same_values_and_distinct_feeds_differ():
    shapes = resolve_shapes(BERT, Workload(), "m")
    a, b = synthesize(BERT, shapes, seed=3, count=2)
    (again,) = synthesize(BERT, shapes, seed=3)
    assert np.array_equal(a["ids"], again["ids"]) and not np.array_equal(a["ids"], b["ids"])


def test_strings_are_not_synthesised():
    s = sig(TensorInfo("text", "string", (1,)))
    with pytest.raises(PerfkitError, match="m.onnx: input 'text' is string.*--inputs"):
        synthesize(s, resolve_shapes(s, Workload(), "m.onnx"), seed=0, subject="m.onnx")


def test_npz_is_checked_and_gives_the_batch(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, ids=np.ones((4, 9), np.int64), mask=np.ones((4, 9), np.int64))
    arrays, shapes = load_inputs(str(path), BERT)
    assert arrays["ids"].shape == (4, 9) and shapes.batch == 4


def test_string_data_is_accepted_for_string_inputs(tmp_path):
    path = tmp_path / "text.npy"
    np.save(path, np.array(["hello", "world"]))
    arrays, _ = load_inputs(str(path), sig(TensorInfo("text", "string", ("n",))))
    assert list(arrays["text"]) == ["hello", "world"]


@pytest.mark.parametrize("arrays,match", [
    ({"ids": np.ones((1, 2), np.int64)}, r"missing: mask; unexpected: -"),
    ({"ids": np.ones((1, 2), np.int64), "mask": np.ones((1, 2), np.int64), "x": np.ones(1)}, "unexpected: x"),
    ({"ids": np.ones((1, 2), np.int32), "mask": np.ones((1, 2), np.int64)}, "'ids' is int32, the model wants int64"),
    ({"ids": np.ones((1, 2), np.int64), "mask": np.ones((1, 3), np.int64)}, r"'mask' has shape \[1, 3\]"),
    ({"ids": np.ones((2,), np.int64), "mask": np.ones((1, 2), np.int64)}, r"'ids' has shape \[2\]"),
])
def test_npz_mismatches(tmp_path, arrays, match):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    with pytest.raises(PerfkitError, match=match):
        load_inputs(str(path), BERT)


def test_pickled_npz_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, ids=np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(PerfkitError, match="pickled"):
        load_inputs(str(path), BERT)


def test_npy_needs_a_single_input_model_and_garbage_is_refused(tmp_path):
    npy = tmp_path / "one.npy"
    np.save(npy, np.ones((1, 2), np.int64))
    with pytest.raises(PerfkitError, match="the model has 2 inputs"):
        load_inputs(str(npy), BERT)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not numpy at all")
    with pytest.raises(PerfkitError, match="not a .npz/.npy file"):
        load_inputs(str(junk), BERT)
    pickled = tmp_path / "data.npy"
    pickled.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(PerfkitError, match="a pickle; perfkit reads numpy's own formats only"):
        load_inputs(str(pickled), BERT)
    with pytest.raises(PerfkitError, match="no such file"):
        load_inputs(str(tmp_path / "absent.npz"), BERT)


def test_ids_stay_inside_the_tables_they_index_and_masks_are_ones():
    from perfkit.core.spec import Workload
    from perfkit.files.onnx_file import read_signature
    from perfkit.measure.workload import resolve_shapes, synthesize
    from tests import models

    proto = models.attention()  # a 16-row embedding table indexed by input_ids
    table = proto.graph.initializer[0]
    del table.dims[0]
    table.dims.insert(0, 2)  # pretend the table has 2 rows, like BERT's segment embeddings
    sig = read_signature(proto)
    ids, mask = sig.inputs
    assert ids.index_limit == 1 and mask.index_limit is None
    (feed,) = synthesize(sig, resolve_shapes(sig, Workload(batch=2, dims=(("sequence", 16),)), "m"), seed=0)
    assert feed["input_ids"].max() <= 1 and (feed["attention_mask"] == 1).all()


IMAGE = Signature((TensorInfo("image", "float32", ("batch", 3, 4, 4)),), ())


def calibration_file(tmp_path, n):
    path = tmp_path / "cal.npz"
    np.savez(path, image=np.random.default_rng(1).random((n, 3, 4, 4), dtype=np.float32))
    return str(path)


def test_a_quarter_of_the_calibration_samples_is_held_out_to_judge_accuracy_on(tmp_path):
    samples = read_samples(calibration_file(tmp_path, 40), IMAGE)
    assert (samples.held, len(samples.calibrate["image"])) == (10, 30)
    every = np.load(samples.path)["image"]
    np.testing.assert_array_equal(samples.held_out["image"], every[3::4])  # spread: files are often sorted by label
    fs = feed_set(IMAGE, Workload(batch=2), checks=8, subject="m.onnx", samples=samples)
    assert len(fs.checks) == 5 and fs.checks[0]["image"].shape == (2, 3, 4, 4) and not fs.synthetic_checks
    np.testing.assert_array_equal(np.concatenate([c["image"] for c in fs.checks]), samples.held_out["image"])
    assert fs.checks_from == f"10 samples held out from {samples.path} (calibration used the other 30)"
    cal = calibration_feeds(IMAGE, fs.shapes, samples, 0, skip=len(fs.checks))
    seen = np.concatenate([f["image"] for f in cal.feeds])
    assert len(seen) == 30 and not any((seen == held).all(axis=(1, 2, 3)).any() for held in samples.held_out["image"])
    by_four = feed_set(IMAGE, Workload(batch=4), checks=8, subject="m.onnx", samples=samples)
    assert by_four.checks_from.startswith("8 of the 10 samples held out")  # two calls of 4: what was used


@pytest.mark.parametrize("n", [4, 9])
def test_a_free_batch_calibrates_on_few_samples_and_says_how_many_it_used(tmp_path, n):
    samples = read_samples(calibration_file(tmp_path, n), IMAGE)
    cal = calibration_feeds(IMAGE, resolve_shapes(IMAGE, Workload(batch=1), "m"), samples, 0, skip=0)
    used = n - samples.held
    assert sum(len(f["image"]) for f in cal.feeds) == used and f"({used} of {n} samples" in cal.source


@pytest.mark.parametrize(("n", "per_call"), [(48, 8), (36, 6), (37, 1)])
def test_free_batch_calibration_calls_are_all_one_size(tmp_path, n, per_call):
    # onnxruntime's Entropy and Percentile calibrators stack each tensor over the calls: a smaller last call broke them
    samples = read_samples(calibration_file(tmp_path, n), IMAGE, hold_out=False)
    cal = calibration_feeds(IMAGE, resolve_shapes(IMAGE, Workload(batch=1), "m"), samples, 0, skip=0)
    assert {len(f["image"]) for f in cal.feeds} == {per_call} and sum(len(f["image"]) for f in cal.feeds) == n


def test_a_fixed_batch_keeps_one_call_to_calibrate_on_and_refuses_fewer_samples(tmp_path):
    fixed = Signature((TensorInfo("image", "float32", (8, 3, 4, 4)),), ())
    samples = read_samples(calibration_file(tmp_path, 10), fixed)
    assert samples.held == 2 and len(samples.calibrate["image"]) == 8
    with pytest.raises(PerfkitError, match=r"6 samples, fewer than the model's fixed batch of 8 — give at least 8"):
        calibration_feeds(fixed, resolve_shapes(fixed, Workload(), "m"), read_samples(calibration_file(tmp_path, 6),
                                                                                     fixed), 0, skip=0)


def test_too_few_samples_to_hold_out_are_judged_on_themselves_and_said_so(tmp_path):
    samples = read_samples(calibration_file(tmp_path, 6), IMAGE)
    fs = feed_set(IMAGE, Workload(batch=1), checks=8, subject="m.onnx", samples=samples)
    assert samples.held == 0 and len(fs.checks) == 6
    assert fs.checks_from.startswith("6 of the calibration samples themselves — too few to hold any out")


def test_samples_of_another_shape_leave_synthetic_checks_and_say_why(tmp_path):
    samples = read_samples(calibration_file(tmp_path, 40), IMAGE)
    sig = Signature((TensorInfo("image", "float32", ("batch", 3, "h", "w")),), ())
    fs = feed_set(sig, Workload(batch=1), checks=8, subject="m.onnx", samples=samples)
    assert fs.synthetic_checks and len(fs.checks) == 8
    assert fs.checks_from == ("8 synthetic feeds (calibration samples are image [1, 3, 4, 4], this workload feeds "
                              "image [1, 3, 32, 32])")


def test_the_users_inputs_are_the_checks_when_given(tmp_path):
    path = tmp_path / "in.npz"
    np.savez(path, image=np.ones((3, 3, 4, 4), np.float32))
    fs = feed_set(IMAGE, Workload(inputs=str(path)), checks=8, subject="m.onnx")
    assert len(fs.checks) == 1 and fs.checks[0]["image"].shape == (3, 3, 4, 4) and not fs.synthetic_checks
    assert fs.checks_from == f"the --inputs data ({path})"


FEATURES = sig(TensorInfo("x", "float32", ("batch", 3)))


def test_eval_samples_are_the_check_feeds_with_their_labels(tmp_path, rng):
    from perfkit.measure.workload import read_labelled

    path = tmp_path / "eval.npz"
    np.savez(path, x=rng.random((10, 3), dtype=np.float32), labels=np.arange(10))
    feeds = feed_set(FEATURES, Workload(batch=4), checks=8, subject="m.onnx",
                     labelled=read_labelled(str(path), FEATURES))
    assert [len(c["x"]) for c in feeds.checks] == [4, 4, 2]  # a free batch: the last call is smaller
    assert list(feeds.labels) == list(range(10)) and not feeds.synthetic_checks
    assert feeds.checks_from == f"the --eval data (10 labelled samples of {path})"
    assert len(feeds.feeds) == 1 and feeds.feeds[0]["x"].shape == (4, 3)  # timed on synthetic feeds as before


def test_a_fixed_batch_drops_the_last_partial_call_and_its_labels(tmp_path, rng):
    from perfkit.measure.workload import read_labelled

    fixed = sig(TensorInfo("x", "float32", (4, 3)))
    path = tmp_path / "eval.npz"
    np.savez(path, x=rng.random((10, 3), dtype=np.float32), labels=np.arange(10))
    feeds = feed_set(fixed, Workload(), checks=8, subject="m.onnx", labelled=read_labelled(str(path), fixed))
    assert len(feeds.checks) == 2 and list(feeds.labels) == list(range(8))
    assert feeds.checks_from == f"the --eval data (8 of the 10 labelled samples of {path})"


def test_eval_labels_come_from_a_tables_label_column(tmp_path):
    import pandas as pd

    from perfkit.measure.workload import read_labelled

    path = tmp_path / "eval.csv"
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0], "y": [0, 1]}).to_csv(path, index=False)
    got = read_labelled(str(path), FEATURES, "y")
    assert got.inputs["x"].tolist() == [[1, 3, 5], [2, 4, 6]] and got.labels.tolist() == [0, 1]
    with pytest.raises(PerfkitError, match="--label-column label: no such column in .*eval.csv — its columns: a, b"):
        read_labelled(str(path), FEATURES, "label")


@pytest.mark.parametrize("arrays,message", [
    ({"x": np.zeros((5, 3), np.float32)}, "has no `labels` array — save the labels beside the inputs"),
    ({"x": np.zeros((5, 3), np.float32), "labels": np.arange(4)}, "4 labels for 5 samples — give one label per"),
    ({"x": np.zeros((5, 3), np.float32), "labels": np.zeros((5, 2))}, "labels are float64 of shape \\[5, 2\\], not"),
    ({"x": np.zeros((5, 4), np.float32), "labels": np.arange(5)}, "'x' has shape \\[5, 4\\], the model wants"),
])
def test_eval_data_that_does_not_fit_is_an_error(tmp_path, arrays, message):
    from perfkit.measure.workload import read_labelled

    np.savez(tmp_path / "eval.npz", **arrays)
    with pytest.raises(PerfkitError, match=message):
        read_labelled(str(tmp_path / "eval.npz"), FEATURES)


def test_a_declared_shape_too_large_to_synthesise_names_the_input_and_asks_for_its_size():
    huge = Signature((TensorInfo("x", "float32", (1, 1_000_000, 1_000_000)),), ())
    shapes = resolve_shapes(huge, Workload(), "m.onnx")
    with pytest.raises(PerfkitError, match=r"m.onnx: input 'x' declares shape \[1, 1000000, 1000000\]: 3,725 GiB to "
                                           r"synthesise for one feed — give its real size with --shape x=D1xD2…"):
        synthesize(huge, shapes, 0, subject="m.onnx")
