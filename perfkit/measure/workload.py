"""Turn a signature and a Workload into concrete shapes and seeded feeds, or validate the user's data.

Synthetic values (documented in the README):
- floating point (float16/32/64, bfloat16, float8): uniform in [0, 1) — non-negative, safe for log and sqrt;
- integers (int8…int64, uint8…uint64): uniform in [1, 8] — never 0 (divisions) — and never past the
  last row of a table the input indexes (a segment-id table of two rows gets ids of 1);
- inputs named like a mask (`attention_mask`, `mask`): all ones, i.e. nothing masked, of any type;
- `position_ids` (which optimum's GPT-2 export adds): 0, 1, 2, … along the sequence, as the model counts them;
- bool: True or False with equal odds;
- strings and anything else: not synthesised; the user gives data with --inputs.

The element type is the signature's. `--shape NAME=D1xD2…:DTYPE` may state it (it must then agree); a PyTorch
module, which records no types, takes it from there for its export, else int64 for inputs named like token ids
(`input_ids`, `*_ids`, `token*`, `ids`) and float32 for the rest (`perfkit.backends.torch.input_ports`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfkit.core.errors import PerfkitError
from perfkit.core.model import Signature, TensorInfo
from perfkit.core.spec import Workload
from perfkit.files.data import is_table, read_arrays, read_table
from perfkit.files.onnx_file import file_digest

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BATCH_DEFAULT = 1  # a free first dim is the batch; one item is the latency a single request sees
OTHER_DIM_DEFAULT = 32  # any other free dim (sequence, image side); a stated size, overridable with --dim
INT_LOW, INT_HIGH = 1, 8  # inclusive range of synthetic integers
FLOAT_TYPES = {"float16", "float32", "float64", "bfloat16", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2",
               "float8e5m2fnuz"}
INT_TYPES = {f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)}


@dataclass(frozen=True)
class Shapes:
    """Every input's concrete shape, the items one call processes, and the free dims that were filled."""

    shapes: tuple[tuple[str, tuple[int, ...]], ...]
    batch: int
    filled: tuple[str, ...]  # "batch=1", "x[1]=32": dims given a default value, named for the warning


def resolve_shapes(sig: Signature, wl: Workload, subject: str) -> Shapes:
    """Concrete shapes from --batch, --dim and --shape, documented defaults for the rest."""
    _check_given(sig, wl)
    dims = dict(wl.dims)
    given = {s.name: s.dims for s in wl.shapes}
    batch_names = {i.shape[0] for i in sig.inputs if i.shape and isinstance(i.shape[0], str)}
    all_names = {d for i in sig.inputs for d in (i.shape or ()) if isinstance(d, str)}
    for name in dims:
        if name not in all_names:
            raise PerfkitError(f"--dim {name}", "no input has a dim of that name",
                               f"named dims are: {', '.join(sorted(all_names)) or 'none'}")
        if wl.batch is not None and name in batch_names:
            raise PerfkitError(f"--dim {name}", "is the batch dim, also set by --batch", "give only one of them")
    values: dict[str, int] = {}
    filled: list[str] = []
    out = []
    for info in sig.inputs:
        _check_feedable(info, subject, info.name in given)
        if info.name in given:
            shape = _match_given(info, given[info.name], values)
        else:
            # _check_feedable refused an unknown rank without --shape: info.shape is there
            shape = tuple(_fill(info, pos, dim, wl.batch, dims, values, filled)
                          for pos, dim in enumerate(info.shape or ()))
        out.append((info.name, shape))
    return Shapes(tuple(out), _items_per_call(wl.batch, [s for _, s in out]), tuple(filled))


def _check_given(sig: Signature, wl: Workload) -> None:
    """Every --shape names an input, and its element type, when given, is the input's."""
    infos = {i.name: i for i in sig.inputs}
    for given in wl.shapes:
        info = infos.get(given.name)
        if info is None:
            raise PerfkitError(f"--shape {given.name}", "no such input",
                               f"the inputs are: {', '.join(sorted(infos))}")
        if given.dtype and info.dtype and given.dtype != info.dtype:
            raise PerfkitError(f"--shape {given.name}", f"gives {given.dtype}, the model's input is {info.dtype}",
                               f"drop :{given.dtype}, or write :{info.dtype}")


def _check_feedable(info: TensorInfo, subject: str, shape_given: bool) -> None:
    if info.kind != "tensor":
        raise PerfkitError(subject, f"input '{info.name}' is a {info.kind}, not a tensor",
                           "perfkit feeds tensor inputs only")
    if info.shape is None and not shape_given:
        raise PerfkitError(subject, f"input '{info.name}' has unknown rank",
                           f"give its shape with --shape {info.name}=D1xD2x…")


def _fill(info: TensorInfo, pos: int, dim, batch: int | None, dims: dict, values: dict, filled: list) -> int:
    if isinstance(dim, int):
        if pos == 0 and batch is not None and dim != batch:
            raise PerfkitError(f"--batch {batch}", f"input '{info.name}' has a fixed first dim of {dim}",
                               "re-export the model with a dynamic batch axis, or drop --batch")
        return dim
    if pos == 0 and batch is not None:
        value = batch
    elif dim in dims:
        value = dims[dim]
    elif dim in values:
        return values[dim]
    else:
        value = BATCH_DEFAULT if pos == 0 else OTHER_DIM_DEFAULT
        filled.append(f"{dim}={value}" if dim else f"{info.name}[{pos}]={value}")
    if dim:
        values[dim] = value
    return value


def _match_given(info: TensorInfo, shape: tuple[int, ...], values: dict) -> tuple[int, ...]:
    if info.shape is not None and len(shape) != len(info.shape):
        raise PerfkitError(f"--shape {info.name}", f"has rank {len(shape)}, the model's input has rank "
                           f"{len(info.shape)} ({_show(info.shape)})", "give one size per dim")
    for want, got in zip(info.shape or (), shape, strict=False):
        if isinstance(want, int) and want != got:
            raise PerfkitError(f"--shape {info.name}", f"conflicts with the model's fixed shape {_show(info.shape)}",
                               "keep the fixed dims as they are")
        if isinstance(want, str):
            values.setdefault(want, got)
    return shape


def _items_per_call(batch: int | None, shapes: list[tuple[int, ...]]) -> int:
    """Items one call processes: the batch when set, else the shared first dim of inputs of rank >= 2."""
    if batch is not None:
        return batch
    firsts = {s[0] for s in shapes if len(s) >= 2}
    return firsts.pop() if len(firsts) == 1 else 1


def _show(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]" if shape else "scalar"


def numpy_dtype(name: str):
    """The numpy dtype for an ONNX element type name; bfloat16 and float8 come from ml_dtypes."""
    import numpy as np

    if name in ("bfloat16",) or name.startswith("float8"):
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name.replace("float8", "float8_")))
    if name == "string":
        return np.dtype(np.str_)
    return np.dtype(name)


def synthesize(sig: Signature, shapes: Shapes, seed: int, count: int = 1,
               subject: str = "") -> list[dict[str, np.ndarray]]:
    """`count` seeded feeds; the same seed gives the same values for every variant and every run."""
    import numpy as np

    infos = {i.name: i for i in sig.inputs}
    for name, shape in shapes.shapes:
        size = math.prod(shape) * numpy_dtype(infos[name].dtype).itemsize if infos[name].dtype != "string" else 0
        if size > MAX_FEED_BYTES:
            raise PerfkitError(subject, f"input '{name}' declares shape {_show(shape)}: {size / 2**30:,.0f} GiB to "
                               "synthesise for one feed", f"give its real size with --shape {name}=D1xD2…")
    feeds = []
    for k in range(count):
        rng = np.random.default_rng([seed, k])
        feed = {}
        for name, shape in shapes.shapes:
            dtype = infos[name].dtype
            if "mask" in name.lower() and (dtype in FLOAT_TYPES or dtype in INT_TYPES or dtype == "bool"):
                feed[name] = np.ones(shape, dtype=numpy_dtype(dtype))
            elif name.lower() == "position_ids" and dtype in INT_TYPES and shape:
                feed[name] = np.broadcast_to(np.arange(shape[-1]), shape).astype(dtype)
            elif dtype in FLOAT_TYPES:
                feed[name] = rng.random(shape, dtype=np.float32).astype(numpy_dtype(dtype))
            elif dtype in INT_TYPES:
                limit = infos[name].index_limit
                high = INT_HIGH if limit is None else max(0, min(INT_HIGH, limit))
                feed[name] = rng.integers(min(INT_LOW, high), high, shape, endpoint=True).astype(dtype)
            elif dtype == "bool":
                feed[name] = rng.random(shape) < 0.5
            else:
                raise PerfkitError(subject, f"input '{name}' is {dtype}; perfkit cannot synthesise {dtype} values",
                                   "give data with --inputs data.npz (one array per input name)")
        feeds.append(feed)
    return feeds


def load_inputs(path_text: str, sig: Signature) -> tuple[dict[str, np.ndarray], Shapes]:
    """The user's .npz/.npy (never unpickled) or .csv/.parquet rows, checked against the signature."""
    if is_table(path_text):
        arrays = table_arrays(path_text, sig)
    else:
        loaded = read_arrays(path_text)
        arrays = loaded if isinstance(loaded, dict) else _single_npy(loaded, Path(path_text), sig)
    return arrays, _check_arrays(path_text, arrays, sig)


def table_arrays(path_text: str, sig: Signature) -> dict[str, np.ndarray]:
    """A .csv/.parquet table of rows as the model's inputs (`frame_arrays`)."""
    return frame_arrays(read_table(path_text), sig, path_text)


def frame_arrays(frame: pd.DataFrame, sig: Signature, path_text: str) -> dict[str, np.ndarray]:
    """A table's rows as the model's inputs: one input per column (N, 1) when the inputs are named after the
    columns (a converted pipeline that picks columns by name), else the whole table as the one input."""
    names = [i.name for i in sig.inputs]
    if all(n in frame.columns for n in names):
        out = {}
        for info in sig.inputs:
            column = frame[[info.name]].to_numpy()
            out[info.name] = column.astype(object) if info.dtype == "string" else \
                column.astype(numpy_dtype(info.dtype))
        return out
    if len(names) == 1 and sig.inputs[0].dtype != "string":
        return {names[0]: frame.to_numpy().astype(numpy_dtype(sig.inputs[0].dtype))}
    raise PerfkitError(path_text, f"its columns ({', '.join(map(str, frame.columns[:8]))}) are not the model's "
                       f"inputs ({', '.join(names)})", "give a header row with the model's input names")


def _single_npy(array, path: Path, sig: Signature) -> dict:
    if len(sig.inputs) != 1:
        raise PerfkitError(str(path), f"a .npy holds one array, the model has {len(sig.inputs)} inputs",
                           "save all inputs by name with np.savez(path, name=array, …)")
    return {sig.inputs[0].name: array}


def _check_arrays(subject: str, arrays: dict, sig: Signature) -> Shapes:
    import numpy as np

    wanted = {i.name: i for i in sig.inputs}
    missing, extra = sorted(wanted.keys() - arrays.keys()), sorted(arrays.keys() - wanted.keys())
    if missing or extra:
        raise PerfkitError(subject, f"names do not match the model's inputs (missing: {', '.join(missing) or '-'}; "
                           f"unexpected: {', '.join(extra) or '-'})",
                           f"save arrays named {', '.join(sorted(wanted))}")
    values: dict[str, int] = {}
    for name, arr in arrays.items():
        info = wanted[name]
        want = numpy_dtype(info.dtype) if info.dtype else None
        if arr.dtype != want and not (info.dtype == "string" and arr.dtype.kind in "UO"):
            raise PerfkitError(subject, f"'{name}' is {arr.dtype}, the model wants {info.dtype}",
                               f"save it as arr.astype(np.{info.dtype})" if hasattr(np, info.dtype) else
                               f"save it as {info.dtype}")
        if info.shape is not None:
            ok = len(arr.shape) == len(info.shape) and all(
                (d == g) if isinstance(d, int) else (values.setdefault(d, g) == g) if d else True
                for d, g in zip(info.shape, arr.shape, strict=True))
            if not ok:
                raise PerfkitError(subject, f"'{name}' has shape {_show(arr.shape)}, the model wants "
                                   f"{_show(info.shape)}", "save data of the model's shape (named dims must agree)")
    shapes = tuple((i.name, tuple(arrays[i.name].shape)) for i in sig.inputs)
    return Shapes(shapes, _items_per_call(None, [s for _, s in shapes]), ())


MAX_FEED_BYTES = 2 << 30  # one synthetic input above this is a declared shape nobody runs (1x10^6x10^6)
CALIBRATION_SAMPLES = 32  # synthetic calibration items: enough for MinMax ranges to settle on random data
CALIBRATION_CHUNK = 8  # items per calibration call when the batch dim is free: fewer calls, same ranges
HOLD_OUT_SHARE = 4  # one calibration sample in this many is kept back to judge accuracy on...
HOLD_OUT_MAX = 64  # ...up to this many: every variant runs on each, and 64 items show a 2 % label change
HOLD_OUT_MIN_SAMPLES = 8  # below this, holding any out would leave too little to calibrate on
SYNTHETIC_CALIBRATION = ("int8-static calibrated on synthetic inputs: its ranges come from random data, so "
                         "its accuracy here misstates accuracy on real inputs — give --calibration data.npz")


@dataclass(frozen=True)
class FeedSet:
    """A workload made concrete: its shapes, the feeds timed, and the feeds every variant is compared on."""

    shapes: Shapes
    feeds: tuple[dict[str, Any], ...]  # timed
    checks: tuple[dict[str, Any], ...]  # compared with the reference
    checks_from: str = ""  # what the checks are, for the table: "16 samples held out from cal.npz", "synthetic"
    synthetic_checks: bool = False  # made up from the signature: accuracy on them may misstate real inputs'
    labels: Any = None  # --eval: one label per item of the checks, in their order (an array); None without


@dataclass(frozen=True)
class Calibration:
    """Feeds for static quantization and where they came from (part of a variant's cache key)."""

    feeds: tuple[dict[str, Any], ...] = ()
    source: str = ""
    synthetic: bool = False  # made up from the signature: its accuracy misstates real data's, said so


@dataclass(frozen=True)
class Samples:
    """The user's --calibration samples (first axis: the samples), split into those the quantizer sees and
    those held out to judge every variant on."""

    path: str
    calibrate: dict[str, Any]
    held_out: dict[str, Any]  # empty arrays when there were too few to hold any out
    total: int

    @property
    def held(self) -> int:
        return len(next(iter(self.held_out.values()))) if self.held_out else 0


def read_samples(path_text: str, sig: Signature, hold_out: bool = True) -> Samples:
    """The calibration file, checked against the model's inputs; with `hold_out` and at least
    HOLD_OUT_MIN_SAMPLES, every HOLD_OUT_SHARE-th sample (up to HOLD_OUT_MAX) is held out — spread over the
    file, as files are often sorted by label — leaving at least one call of a fixed batch to calibrate on."""
    import numpy as np

    arrays, _ = load_inputs(path_text, _samples_signature(sig))
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        raise PerfkitError(path_text, "calibration arrays differ in their number of samples (first axis)",
                           "give every input the same number of samples")
    n = counts.pop()
    held = 0 if n < HOLD_OUT_MIN_SAMPLES or not hold_out else min(n // HOLD_OUT_SHARE, HOLD_OUT_MAX)
    held = max(0, min(held, n - (fixed_batch(sig) or 1)))
    picked = np.zeros(n, dtype=bool)
    picked[np.arange(HOLD_OUT_SHARE - 1, n, HOLD_OUT_SHARE)[:held]] = True
    return Samples(path_text, {k: a[~picked] for k, a in arrays.items()},
                   {k: a[picked] for k, a in arrays.items()} if held else {}, n)


def fixed_batch(sig: Signature) -> int | None:
    """The batch every call must have, when the inputs' first dim is one fixed number."""
    fixed = {i.shape[0] for i in sig.inputs if i.shape and isinstance(i.shape[0], int)}
    return fixed.pop() if len(fixed) == 1 else None


def feed_set(sig: Signature, wl: Workload, *, checks: int, subject: str, samples: Samples | None = None,
             labelled: Labelled | None = None) -> FeedSet:
    """The user's data as both the timed and the check feed; else seeded synthetic feeds timed, and compared on
    the calibration samples held out (`samples`) when they fit this workload, or on `checks` synthetic feeds
    (none when nothing is compared). The --eval samples (`labelled`), when given, are the check feeds."""
    if labelled is not None:
        return eval_checks(feed_set(sig, wl, checks=0, subject=subject), labelled, sig)
    if wl.inputs:
        arrays, shapes = load_inputs(wl.inputs, sig)
        return FeedSet(shapes, (arrays,), (arrays,) if checks else (), f"the --inputs data ({wl.inputs})")
    shapes = resolve_shapes(sig, wl, subject)
    feeds = tuple(synthesize(sig, shapes, wl.seed, max(wl.distinct_feeds, checks), subject))
    why_not = ""
    if checks and samples is not None:
        real, why_not = held_out_checks(samples, shapes)
        if real:
            used = len(real) * max(shapes.batch, 1)
            return FeedSet(shapes, feeds[:wl.distinct_feeds], real, real_checks_from(samples, used))
    synthetic = f"{checks} synthetic feeds" + (f" ({why_not})" if why_not else "")
    return FeedSet(shapes, feeds[:wl.distinct_feeds], feeds[:checks], synthetic, synthetic_checks=bool(checks))


@dataclass(frozen=True)
class Labelled:
    """The --eval samples: the model's inputs by name (first axis: the samples) and one label per sample."""

    path: str
    inputs: dict[str, Any]
    labels: Any  # one dimension, a number per sample: integer classes, or float targets


def read_labelled(path_text: str, sig: Signature, label_column: str | None = None) -> Labelled:
    """The --eval file checked against the model's inputs: a .npz of the inputs by name and a `labels` array,
    or a .csv/.parquet table whose `label_column` holds the labels and whose other columns are the inputs."""
    import numpy as np

    if not sig.inputs:
        raise PerfkitError(path_text, "the model has no inputs to feed labelled samples to", "drop --eval")
    if is_table(path_text):
        arrays, labels = _table_with_labels(path_text, sig, label_column)
    else:
        arrays, labels = _npz_with_labels(path_text)
    _check_arrays(path_text, arrays, _samples_signature(sig))
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.dtype.kind not in "biuf":
        raise PerfkitError(path_text, f"labels are {labels.dtype} of shape {_show(labels.shape)}, not one number "
                           "per sample", "give integer class indices, or float targets, one per sample")
    n = len(next(iter(arrays.values())))
    if len(labels) != n:
        raise PerfkitError(path_text, f"{len(labels)} labels for {n} samples",
                           "give one label per sample (the first axis of every input)")
    return Labelled(path_text, arrays, labels)


def _npz_with_labels(path_text: str) -> tuple[dict[str, Any], Any]:
    arrays = read_arrays(path_text)
    if not isinstance(arrays, dict) or "labels" not in arrays:
        raise PerfkitError(path_text, "has no `labels` array", "save the labels beside the inputs: "
                           "np.savez(path, labels=y, INPUT=x, …), one label per sample")
    return {k: a for k, a in arrays.items() if k != "labels"}, arrays["labels"]


def _table_with_labels(path_text: str, sig: Signature, label_column: str | None) -> tuple[dict[str, Any], Any]:
    frame = read_table(path_text)
    columns = ", ".join(map(str, frame.columns[:8]))
    if label_column is None:
        raise PerfkitError(path_text, "a table needs its labels' column named",
                           f"give --label-column NAME (its columns: {columns})")
    if label_column not in frame.columns:
        raise PerfkitError(f"--label-column {label_column}", f"no such column in {path_text}",
                           f"its columns: {columns}")
    return frame_arrays(frame.drop(columns=[label_column]), sig, path_text), frame[label_column].to_numpy()


def eval_checks(feeds: FeedSet, labelled: Labelled, sig: Signature) -> FeedSet:
    """The workload with the --eval samples as its check feeds, in calls of its batch (only whole calls of a
    fixed batch, the labels of the samples left out dropped with them), their labels beside them."""
    batch = fixed_batch(sig)
    checks = calls(labelled.inputs, batch or max(feeds.shapes.batch, 1), whole=batch is not None)
    n = len(labelled.labels)
    if not checks:
        raise PerfkitError(labelled.path, f"{n} samples, fewer than the model's fixed batch of {batch}",
                           f"give at least {batch} labelled samples")
    used = sum(len(next(iter(c.values()))) for c in checks)
    some = f"{used} of the {n}" if used < n else str(used)
    return replace(feeds, checks=checks, checks_from=f"the --eval data ({some} labelled samples of {labelled.path})",
                   synthetic_checks=False, labels=labelled.labels[:used])


def held_out_checks(samples: Samples, shapes: Shapes) -> tuple[tuple[dict[str, Any], ...], str]:
    """The held-out samples (or, when too few to hold any out, the calibration samples themselves) as feeds
    of this workload's batch; () and why when their shapes are not this workload's."""
    pool = samples.held_out or samples.calibrate
    n = len(next(iter(pool.values())))
    per_call = max(shapes.batch, 1)
    feeds = calls(pool, per_call, whole=True)
    want = dict(shapes.shapes)
    if not feeds:
        return (), f"the {n} calibration samples are fewer than one call's batch of {per_call}"
    got = {k: tuple(a.shape) for k, a in feeds[0].items()}
    if got != want:
        return (), f"calibration samples are {_shapes(got)}, this workload feeds {_shapes(want)}"
    return feeds, ""


def _shapes(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{name} {_show(shape)}" for name, shape in shapes.items())


def real_checks_from(samples: Samples, used: int) -> str:
    """The accuracy line's words for real checks: how many samples, and whether the quantizer saw them."""
    if samples.held:
        some = f"{used} of the {samples.held}" if used < samples.held else str(used)
        return f"{some} samples held out from {samples.path} (calibration used the other " \
               f"{samples.total - samples.held})"
    return (f"{used} of the calibration samples themselves — too few to hold any out (fewer than "
            f"{HOLD_OUT_MIN_SAMPLES}), and a quantizer's own samples flatter it: give more samples or --inputs")


def calibration_feeds(sig: Signature, shapes: Shapes, samples: Samples | None, seed: int, skip: int) -> Calibration:
    """Feeds for static quantization: the user's samples (not those held out) in calls of the model's fixed
    batch, or of up to CALIBRATION_CHUNK when the batch is free; or synthetic, seeded apart from the `skip`
    check feeds so calibration never sees the inputs accuracy is judged on."""
    if samples is None:
        per_call = max(shapes.batch, 1)
        count = max(1, -(-CALIBRATION_SAMPLES // per_call))
        feeds = synthesize(sig, shapes, seed, skip + count)[skip:]
        return Calibration(tuple(feeds), f"{count * per_call} synthetic samples (seed {seed})", synthetic=True)
    arrays, n = samples.calibrate, samples.total - samples.held
    batch = fixed_batch(sig)
    if batch is not None and n < batch:
        raise PerfkitError(samples.path, f"{n} samples, fewer than the model's fixed batch of {batch}",
                           f"give at least {batch} samples")
    # Every call the same size: onnxruntime's Entropy and Percentile calibrators stack a tensor's values over the
    # calls, and a smaller last call made them fail ("inhomogeneous shape"); the largest chunk that divides n.
    chunk = batch or max(k for k in range(1, min(CALIBRATION_CHUNK, n) + 1) if n % k == 0)
    chunks = calls(arrays, chunk, whole=True)
    used = sum(len(next(iter(c.values()))) for c in chunks)
    digest = file_digest([Path(samples.path)])[:12]
    return Calibration(chunks, f"{samples.path} ({used} of {samples.total} samples, sha256 {digest})")


def calls(arrays: dict[str, Any], per_call: int, *, whole: bool) -> tuple[dict[str, Any], ...]:
    """Samples (first axis) as feeds of `per_call` items each; `whole`: only full calls (a fixed batch, or a
    workload's), else the rest as a last, smaller one."""
    n = len(next(iter(arrays.values())))
    last = n - per_call + 1 if whole else n
    return tuple({k: a[i:i + per_call] for k, a in arrays.items()} for i in range(0, last, per_call))


def _samples_signature(sig: Signature) -> Signature:
    """The signature with a free first dim, so any number of samples passes the shape check."""
    inputs = tuple(replace(i, shape=("samples", *i.shape[1:])) if i.shape else i for i in sig.inputs)
    return Signature(inputs, sig.outputs)


def nan_inputs(feed: dict[str, Any]) -> list[str]:
    """The user's inputs that hold NaN, with how many: outputs computed from them are NaN too, unless the model
    imputes them (scikit-learn's SimpleImputer does)."""
    import numpy as np

    out = []
    for name, array in feed.items():
        if isinstance(array, np.ndarray) and array.dtype.kind == "f" and (count := int(np.isnan(array).sum())):
            out.append(f"'{name}' holds {count:,} NaN of {array.size:,} values")
    return out
