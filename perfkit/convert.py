"""A native model's ONNX conversion, cached like a variant, and the parity check of the two: the same inputs
through both, every output compared, labels for classifiers, and where float64 → float32 changes answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from perfkit.accuracy import OutputAccuracy, against
from perfkit.errors import CaseFailed, PerfkitError
from perfkit.isolate import call_in
from perfkit.native import NativeModel, Port, identify
from perfkit.transforms.export import ExportJob, export

# The package versions that decide what a conversion writes: a change of any makes a new cache entry.
CONVERTER_PACKAGES = {
    "sklearn": ("scikit-learn", "skl2onnx", "onnxmltools", "lightgbm", "xgboost", "xgboost-cpu"),
    "torch": ("torch", "onnxscript"),
    "keras": ("keras", "tensorflow", "tf2onnx"),
}
FLOAT32_ONLY = ("LGBM", "XGB")  # onnxmltools' booster converters write float32 trees, whatever the input type
PARITY_TOLERANCE = 1e-5  # the largest absolute error a float32 conversion should show on well-scaled outputs
ONNX_FILE, NATIVE_FILE = "model.onnx", "native.json"


@dataclass(frozen=True)
class Converted:
    native: NativeModel  # with the input and output names of the conversion
    onnx_path: str
    notes: tuple[str, ...]
    cached: bool = False


def prepare_native(path: str, trust: bool, factory: str | None) -> NativeModel:
    """Identify the file and refuse an untrusted pickle here, before any worker starts."""
    native = identify(path, trust, factory)
    if native.format == "sklearn":
        from perfkit.trust import require_trust

        require_trust(native.path, native.trusted, "this scikit-learn file", native.source or None)
    return native


def convert(native: NativeModel, *, cache_dir: str, opset: int | None = None,
            shapes: tuple[tuple[str, tuple[int, ...]], ...] = (), data: str | None = None,
            float64: bool = False, timeout_s: float = 600, isolate: bool = True) -> Converted:
    """The cached ONNX conversion, built in a worker (a framework that crashes takes only the worker)."""
    folder = Path(cache_dir) / "exports" / export_key(native, opset, shapes, data, float64)
    if (folder / ONNX_FILE).is_file() and (folder / NATIVE_FILE).is_file():
        meta = json.loads((folder / NATIVE_FILE).read_text())
        filled = replace(native, inputs=tuple(Port(p["name"], p["dtype"], _shape(p["shape"]))
                                              for p in meta["inputs"]),
                         outputs=tuple(meta["outputs"]), columns=meta["columns"])
        return Converted(filled, str(folder / ONNX_FILE), tuple(meta["notes"]), cached=True)
    created = [p for p in (folder.parent.parent, folder.parent) if not p.exists()]
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    done = False
    try:
        job = ExportJob(native, str(tmp / ONNX_FILE), opset, shapes, data, float64)
        try:
            filled, notes = call_in(export, job, timeout_s, isolate)
        except CaseFailed as exc:
            raise PerfkitError(native.source or native.path, f"the conversion to ONNX failed: {exc}",
                               "pass --debug --no-isolate to see where, or convert it yourself and give the .onnx"
                               ) from None
        meta = {"inputs": [asdict(p) for p in filled.inputs], "outputs": list(filled.outputs),
                "columns": filled.columns, "notes": list(notes)}
        (tmp / NATIVE_FILE).write_text(json.dumps(meta, indent=1))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:  # a failed conversion leaves no trace: not even the cache folders it made
            for made in reversed(created):
                with contextlib.suppress(OSError):
                    made.rmdir()
    return Converted(filled, str(folder / ONNX_FILE), tuple(notes))


def _shape(value: Any) -> tuple | None:
    return None if value is None else tuple(value)


def export_key(native: NativeModel, opset: int | None, shapes: tuple, data: str | None, float64: bool) -> str:
    from importlib.metadata import PackageNotFoundError, version

    from perfkit import __version__
    from perfkit.model import file_digest

    versions = {}
    for package in ("onnx", *CONVERTER_PACKAGES[native.framework]):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    key = {"digest": native.digest, "format": native.format, "factory": native.factory, "opset": opset,
           "shapes": [list(map(str, s)) for s in shapes], "perfkit": __version__, "versions": versions,
           "float64": float64, "data": file_digest([Path(data)]) if data else None}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


NativeReference = tuple[tuple[str, ...], tuple[list[Any], ...]]


def native_checks(args: tuple[NativeModel, tuple[dict[str, Any], ...]]) -> NativeReference:
    """(output names, outputs per feed) of the native model: the accuracy reference of a native run."""
    from perfkit.backends import get_backend
    from perfkit.spec import Target

    native, feeds = args
    session = get_backend(native.framework).open(native, Target(native.framework, "cpu"))
    try:
        return session.output_names, tuple(list(session.run(session.prepare(f))) for f in feeds)
    finally:
        session.close()


@dataclass(frozen=True)
class Parity:
    outputs: tuple[OutputAccuracy, ...]
    rows: int  # items compared (rows of a table, samples of a batch)
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return all(a.comparable and (a.agree is None or a.agree == 1.0) and
                   (a.max_abs is None or a.max_abs <= PARITY_TOLERANCE) for a in self.outputs)


def parity(native: NativeModel, onnx_path: str, feeds: tuple[dict[str, Any], ...], timeout_s: float,
           isolate: bool) -> Parity:
    """The native model and its conversion on the same feeds, each in a worker; every output compared."""
    from perfkit.case import run_checks

    reference = call_in(native_checks, (native, feeds), timeout_s, isolate)
    onnx_names, got = call_in(run_checks, (onnx_path, feeds), timeout_s, isolate)
    outputs = against(reference, onnx_names, got)  # an output the conversion lacks is "not comparable"
    rows = sum(len(next(iter(f.values()))) for f in feeds) if feeds and feeds[0] else 0
    return Parity(outputs, rows, tuple(float64_warnings(native, outputs, timeout_s, isolate)))


def float64_warnings(native: NativeModel, outputs: tuple[OutputAccuracy, ...], timeout_s: float,
                     isolate: bool) -> list[str]:
    """scikit-learn computes in float64, the conversion in float32: name the steps that make that matter."""
    off = [a for a in outputs if a.comparable and ((a.agree is not None and a.agree < 1.0) or
                                                   (a.max_abs or 0.0) > PARITY_TOLERANCE)]
    if native.framework != "sklearn" or not off:
        return []
    steps = call_in(_sensitive_steps, native, timeout_s, isolate)
    where = ", ".join(steps) if steps else "float32 arithmetic in the converted graph"
    worst = ", ".join(f"{a.name}: " + (f"labels agree {a.agree:.2%}" if a.agree is not None and a.agree < 1
                                       else f"max abs {a.max_abs:.2g}") for a in off)
    boosters = [s.split(" ")[0] for s in steps if s.startswith(FLOAT32_ONLY)]
    fix = (f"--float64 cannot help: the {' and '.join(boosters)} converters write float32 trees"
           if boosters else "or convert with --float64 to keep scikit-learn's precision in the ONNX model")
    return [f"float64 → float32 changes answers ({worst}); the likely cause: {where} — compare on real data, {fix}"]


def _sensitive_steps(native: NativeModel) -> list[str]:
    from perfkit.backends.sklearn import float64_sensitive, load

    return float64_sensitive(load(native))


PARITY_FEEDS = 4  # synthetic feeds of --batch items each: several, so one lucky draw cannot pass


def run_convert(model: str, output: str, *, shapes: tuple[str, ...] = (), inputs: str | None = None,
                batch: int = 64, trust: bool = False, factory: str | None = None, opset: int | None = None,
                float64: bool = False, cache_dir: str | None = None, timeout_s: float = 600,
                isolate: bool = True) -> tuple[list[str], Parity]:
    """`perfkit convert`: the ONNX file at `output` and the parity report as lines."""
    from perfkit.model import open_onnx, read_signature
    from perfkit.spec import Workload, parse_shape
    from perfkit.store import write_atomic
    from perfkit.transforms.cache import default_cache_dir
    from perfkit.workload import load_inputs, resolve_shapes, synthesize

    out = Path(output)
    if not out.parent.is_dir():
        raise PerfkitError(output, "its folder does not exist", "create it first, or give another -o path")
    if out.suffix.lower() != ".onnx":
        raise PerfkitError(output, "not an .onnx path", "name the output model.onnx")
    parsed = tuple(parse_shape(s) for s in shapes)
    native = prepare_native(model, trust, factory)
    converted = convert(native, cache_dir=cache_dir or default_cache_dir(), opset=opset, shapes=parsed,
                        data=inputs, float64=float64, timeout_s=timeout_s, isolate=isolate)
    _, proto = open_onnx(converted.onnx_path)
    signature = read_signature(proto)
    if inputs:
        feeds: tuple[dict[str, Any], ...] = (load_inputs(inputs, signature)[0],)
        source = f"the {inputs} sample"
    else:
        free = any(i.shape and not isinstance(i.shape[0], int) for i in signature.inputs)
        resized = tuple((n, (batch, *s[1:])) for n, s in parsed if free and n in {i.name for i in signature.inputs})
        concrete = resolve_shapes(signature, Workload(batch=batch if free else None, shapes=resized), model)
        feeds = tuple(synthesize(signature, concrete, 0, PARITY_FEEDS, model))
        source = f"{len(feeds)} synthetic feeds of {concrete.batch} items (uniform [0, 1))"
    result = parity(converted.native, converted.onnx_path, feeds, timeout_s, isolate)
    write_atomic(out, Path(converted.onnx_path).read_bytes())
    return parity_lines(converted, signature, result, source), result


def parity_lines(converted: Converted, signature, result: Parity, source: str) -> list[str]:
    from perfkit.accuracy import fmt_cos

    native = converted.native

    def port(t) -> str:
        dims = ", ".join("N" if i == 0 and not isinstance(d, int) else str(d if d is not None else "?")
                         for i, d in enumerate(t.shape or ()))
        return f"{t.name} {t.dtype} [{dims}]"

    lines = [f"converted {native.source or native.path} ({native.format}) — {'; '.join(converted.notes)}"
             + (" (cached)" if converted.cached else ""),
             f"inputs:  {', '.join(port(t) for t in signature.inputs)}",
             f"outputs: {', '.join(port(t) for t in signature.outputs)}",
             f"parity, native vs ONNX on {source}:",
             f"  {'output':<20} {'max abs':>9} {'max rel':>9} {'cos':>10} {'agree':>8}"]
    for a in result.outputs:
        if not a.comparable:
            lines.append(f"  {a.name:<20} not comparable: {a.reason}")
            continue
        lines.append(f"  {a.name:<20} {_num(a.max_abs):>9} {_num(a.max_rel):>9} "
                     f"{fmt_cos(a.cosine) if a.cosine is not None else '-':>10} "
                     f"{f'{a.agree:.2%}' if a.agree is not None else '-':>8}")
    verdict = "ok" if result.ok else "OFF"
    lines.append(f"parity: {verdict} (max abs ≤ {PARITY_TOLERANCE:g} and every label equal, on {result.rows} items)")
    lines += [f"warning: {w}" for w in result.warnings]
    return lines


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"
