"""Build a chain of transforms step by step, each step in a spawned worker, each result cached.

A step's cache key is the sha256 of its input's content digest, its name and every resolved option,
the onnxruntime and perfkit versions, and whatever else decides its output (calibration data, the
accuracy budget for fp16's repair, the CPU's flags for machine-specific graph optimization). A hit
costs a directory lookup; a build is written into a temporary folder and renamed into place, so a
crash never leaves a half-written entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from perfkit.core import VERSION
from perfkit.core.errors import CaseFailed, PerfkitError, Unsupported
from perfkit.core.model import Model
from perfkit.files.onnx_file import external_data_files, file_digest
from perfkit.measure.isolate import Failure, call_guarded
from perfkit.output.store import write_atomic
from perfkit.transforms import TRANSFORMS, BuildContext, Step, get_transform

if TYPE_CHECKING:
    import onnx

MODEL_FILE = "model.onnx"
LARGE_BYTES = 1_800_000_000  # protobuf cannot serialise 2 GiB; above this, weights go to external data


@dataclass(frozen=True)
class Variant:
    model: Model
    notes: tuple[str, ...] = ()  # what the transforms said: fused ops, blocked nodes, machine-specific layout
    cached: bool = False  # every step came from the cache


@dataclass(frozen=True)
class Broken:
    """A variant that could not be built: skipped (a transform that does not apply) or failed, with why."""

    lineage: tuple[str, ...]
    status: str
    reason: str

    @property
    def label(self) -> str:
        return "+".join(self.lineage)

    def as_model(self) -> Model:
        """A row's model for a variant with no file: its lineage says what it would have been."""
        return Model("", "onnx", "", self.lineage)


def default_cache_dir() -> str:
    return os.environ.get("PERFKIT_CACHE", ".perfkit-cache")


def build_variant(base: Model, steps: tuple[Step, ...], ctx: BuildContext, cache_dir: str, timeout_s: float,
                  isolate: bool = True, cpu_flags: tuple[str, ...] = ()) -> Variant | Broken:
    """build_chain, with a step that does not apply or breaks made into a Broken variant: one row, not the run."""
    try:
        return build_chain(base, steps, ctx, cache_dir, timeout_s, isolate, cpu_flags)
    except Unsupported as exc:
        return Broken(tuple(s.label for s in steps), "skipped", str(exc))
    except CaseFailed as exc:
        return Broken(tuple(s.label for s in steps), "failed", str(exc))
    except PerfkitError as exc:  # that variant's row, never the run; a hint only when it is not about the cache
        cached = Path(exc.subject).resolve().is_relative_to(Path(cache_dir).resolve())
        hint = "" if cached or not exc.fix else f" — {exc.fix}"
        return Broken(tuple(s.label for s in steps), "failed", f"building {'+'.join(s.label for s in steps)}: "
                      f"{exc.what}{hint}")


def build_chain(base: Model, steps: tuple[Step, ...], ctx: BuildContext, cache_dir: str, timeout_s: float,
                isolate: bool = True, cpu_flags: tuple[str, ...] = ()) -> Variant:
    """The variant made by applying `steps` to `base`. A step that raises Unsupported propagates (a skipped
    row); one that crashes, hangs or raises anything else becomes CaseFailed naming the step."""
    model, notes, all_cached = base, [], True
    for step in steps:
        folder = Path(cache_dir) / "variants" / step_key(model, step, ctx, cpu_flags)
        meta_path = folder / "meta.json"
        if _incomplete(folder):
            shutil.rmtree(folder, ignore_errors=True)  # an entry someone pruned by hand is built again
            all_cached = False
            _build_step(model, step, ctx, folder, timeout_s, isolate)
        meta = json.loads(meta_path.read_text())
        model = Model(str(folder / MODEL_FILE), "onnx", meta["digest"], (*model.lineage, step.label))
        notes += [f"{step.label}: {n}" for n in meta["notes"]]
    if steps:
        _check_loads(meta, meta_path, steps[-1], timeout_s, isolate)
    return Variant(model, tuple(notes), all_cached)


def _check_loads(meta: dict, meta_path: Path, last: Step, timeout_s: float, isolate: bool) -> None:
    """The chain's file, the one its rows measure, must load in onnxruntime as they will (intermediate files
    need not: a fused graph onnxruntime's own optimizer breaks still quantizes into one that loads). Asked
    once per entry, the answer kept in its meta.json (rewritten whole or not at all)."""
    if "loads" not in meta:
        answer = call_guarded(load_problem, str(meta_path.parent / MODEL_FILE), timeout_s, isolate)
        meta = {**meta, "loads": answer.reason if isinstance(answer, Failure) else answer}
        write_atomic(meta_path, json.dumps(meta, indent=1))
    if meta["loads"]:
        raise CaseFailed(f"building {last.label}: onnxruntime cannot load what it wrote: {meta['loads']}")


def step_key(parent: Model, step: Step, ctx: BuildContext, cpu_flags: tuple[str, ...]) -> str:
    salt: dict[str, object] = {}
    if step.name == "int8-static":
        salt["calibration"] = ctx.calibration_source
    if step.name == "fp16":
        salt["budget"] = ctx.budget.text if ctx.budget else ""
        salt["checks"] = _feeds_digest(ctx.check_feeds)
    if step.name == "fusion":  # a Hugging Face config.json beside the user's model gives heads and hidden size
        salt["config"] = _config_digest(ctx.source)
    if TRANSFORMS[step.name].machine_specific:
        salt["cpu"] = cpu_flags
    text = json.dumps([parent.digest, step.name, step.options, _ort_version(), VERSION, salt], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _feeds_digest(feeds) -> str:
    h = hashlib.sha256()
    for feed in feeds:
        for name in sorted(feed):
            h.update(name.encode())
            h.update(feed[name].tobytes())
    return h.hexdigest()


def _config_digest(source: str) -> str:
    folder = Path(source) if Path(source).is_dir() else Path(source).parent
    config = folder / "config.json"
    return file_digest([config]) if source and config.is_file() else ""


def _ort_version() -> str:
    from importlib import metadata

    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return ""


def _build_step(parent: Model, step: Step, ctx: BuildContext, folder: Path, timeout_s: float,
                isolate: bool) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        notes = call_guarded(apply_step, (step, parent.path, str(work / MODEL_FILE), ctx), timeout_s, isolate)
        if isinstance(notes, Failure):
            if notes.status == "skipped":
                raise Unsupported(notes.reason)
            raise CaseFailed(f"building {step.label}: {notes.reason}")
        if lacking := _incomplete(work, meta=False):
            raise CaseFailed(f"building {step.label}: its output is incomplete ({lacking})")
        digest = file_digest(sorted(p for p in work.iterdir() if p.is_file()))
        (work / "meta.json").write_text(json.dumps({"step": step.label, "options": step.options,
                                                    "parent": parent.path, "parent_digest": parent.digest,
                                                    "digest": digest, "notes": list(notes)}, indent=1))
        try:
            os.replace(work, folder)
        except OSError:  # another run built the same step meanwhile: theirs is as good as ours
            if not (folder / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _incomplete(folder: Path, meta: bool = True) -> str:
    """What the entry lacks: its model, an external data file the model names (or part of one), its
    meta.json; "" when whole."""
    import onnx

    model = folder / MODEL_FILE
    if not model.is_file() or (meta and not (folder / "meta.json").is_file()):
        return "no model file"
    try:
        external_data_files(onnx.load(str(model), load_external_data=False), model)
    except PerfkitError as exc:
        return exc.what
    return ""


def apply_step(args: tuple[Step, str, str, BuildContext]) -> tuple[str, ...]:
    """One transform from src to dst (in the worker); returns its notes. Weights the transform left naming
    its input's data files are brought into dst's folder, so the entry loads wherever it is copied."""
    step, src, dst, ctx = args
    src, dst = str(Path(src).resolve()), str(Path(dst).resolve())  # the step runs in a scratch folder
    ctx = replace(ctx, source=str(Path(ctx.source).resolve()) if ctx.source else "")
    with _scratch_cwd(Path(dst).parent / SCRATCH):
        notes = tuple(get_transform(step.name)(Path(src), Path(dst), step.values(), ctx))
    bring_data_along(Path(dst), Path(src))
    return notes


SCRATCH = ".scratch"  # inside the step's work folder, which the parent removes whatever happens to the worker


@contextlib.contextmanager
def _scratch_cwd(folder: Path) -> Iterator[None]:
    """Run inside a scratch folder, removed after: tools write temporary files to the working folder
    (onnxruntime's symbolic shape inference leaves sym_shape_infer_temp.onnx and a weights file), and perfkit
    writes nothing outside its results and cache folders."""
    before = os.getcwd()
    folder.mkdir()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)
        shutil.rmtree(folder, ignore_errors=True)


NOT_THE_FILE = ("NOT_IMPLEMENTED", "Could not find an implementation")  # a kernel missing on the CPU only


def load_problem(path: str) -> str:
    """Why onnxruntime cannot load the file as its rows will (CPU, default optimization), or "": a type error
    a quantizer wrote, a fused graph onnxruntime's optimizer breaks. A kernel missing on the CPU is no
    problem here: the variant may be meant for another provider."""
    try:
        import onnxruntime as ort
    except ImportError:  # a machine that builds for others (or the tests' fake backend): nothing to ask
        return ""
    from perfkit.backends.ort import clean_message

    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind classes
        text = clean_message(exc)
        if not any(mark in text for mark in NOT_THE_FILE):
            return text.split(" failed:", 1)[-1].removeprefix("This is an invalid model. ")[:400]
    return ""


def bring_data_along(dst: Path, src: Path) -> None:
    """Rewrite dst with its weights in `dst.onnx.data` when any tensor still points at a data file that
    is beside src but not beside dst (onnxruntime's optimized-model writer and plugins do that)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, load_external_data_for_tensor, uses_external_data

    proto = onnx.load(str(dst), load_external_data=False)
    external = [t for t in _get_all_tensors(proto) if uses_external_data(t)]
    here = {e.value for t in external for e in t.external_data if e.key == "location"}
    away = {name for name in here if not (dst.parent / name).is_file()}
    if not away or not all((src.parent / name).is_file() for name in away):
        return  # whole, or naming files nobody has: the entry check reports it
    for tensor in external:
        location = next(e.value for e in tensor.external_data if e.key == "location")
        base = dst.parent if (dst.parent / location).is_file() else src.parent
        load_external_data_for_tensor(tensor, str(base))
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
    for name in here:
        (dst.parent / name).unlink(missing_ok=True)  # onnx appends to a data file that exists
    save(proto, dst, large=True)


def weights_beside(path: Path) -> bool:
    """Whether a transform of this model writes its weights beside it (`model.onnx.data`): the model's own
    weights live beside it (the user's layout is kept), or it is too big for one protobuf message."""
    import onnx

    files = external_data_files(onnx.load(str(path), load_external_data=False), path)
    return bool(files) or path.stat().st_size > LARGE_BYTES



def save(proto: onnx.ModelProto, dst: Path, large: bool) -> None:
    """Save a transform's result; weights go beside it as `model.onnx.data` when the model is large (which
    rewrites `proto`'s tensors to point at that file: save a copy if the proto is used again)."""
    import onnx

    if large or proto.ByteSize() > LARGE_BYTES:
        onnx.save_model(proto, dst, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=dst.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(proto, dst)
