"""`perfkit convert`: a native model's ONNX file written where the user asks, and the parity report as lines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from perfkit.backends import get_backend
from perfkit.core.errors import PerfkitError
from perfkit.core.model import NO_HINTS, NativeHints, Signature, TensorInfo
from perfkit.core.spec import Target, Workload, parse_shape
from perfkit.files.onnx_file import external_data_files, open_onnx, read_signature
from perfkit.measure.workload import load_inputs, resolve_shapes, synthesize
from perfkit.native.conversion import Converted, convert
from perfkit.native.detect import prepare_native
from perfkit.native.frameworks import startup_note
from perfkit.native.parity import PARITY_RELATIVE, PARITY_TOLERANCE, Parity, parity
from perfkit.output.store import write_atomic
from perfkit.output.units import fmt_cos
from perfkit.transforms.cache import default_cache_dir

PARITY_FEEDS = 4  # synthetic feeds of --batch items each: several, so one lucky draw cannot pass


def run_convert(model: str, output: str, *, shapes: tuple[str, ...] = (), inputs: str | None = None,
                batch: int = 64, trust: bool = False, factory: str | None = None, opset: int | None = None,
                float64: bool = False, cache_dir: str | None = None, timeout_s: float = 600,
                isolate: bool = True, hints: NativeHints = NO_HINTS,
                on_progress: Callable[[str], None] = lambda _: None) -> tuple[list[str], Parity]:
    """`perfkit convert`: the ONNX file at `output` and the parity report as lines."""
    out = Path(output)
    if not out.parent.is_dir():
        raise PerfkitError(output, "its folder does not exist", "create it first, or give another -o path")
    if out.suffix.lower() != ".onnx":
        raise PerfkitError(output, "not an .onnx path", "name the output model.onnx")
    parsed = tuple(parse_shape(s) for s in shapes)
    native = prepare_native(model, trust, factory, hints)
    on_progress(f"converting {model} ({native.format}) to ONNX{startup_note(native.framework)}")
    converted = convert(native, cache_dir=cache_dir or default_cache_dir(), opset=opset, shapes=parsed,
                        data=inputs, float64=float64, timeout_s=timeout_s, isolate=isolate)
    _, proto = open_onnx(converted.onnx_path)
    signature = read_signature(proto)
    if inputs:
        feeds: tuple[dict[str, Any], ...] = (load_inputs(inputs, signature)[0],)
        source = f"the {inputs} sample"
    else:
        free = any(i.shape and not isinstance(i.shape[0], int) for i in signature.inputs)
        names = {i.name for i in signature.inputs}
        resized = tuple(replace(s, dims=(batch, *s.dims[1:])) for s in parsed if free and s.name in names)
        concrete = resolve_shapes(signature, Workload(batch=batch if free else None, shapes=resized), model)
        feeds = tuple(synthesize(signature, concrete, 0, PARITY_FEEDS, model))
        source = f"{len(feeds)} synthetic feeds of {concrete.batch} items ({fed_values(feeds)})"
    native_target = Target(native.framework, "cpu")
    unavailable = get_backend(native.framework).unavailable(native_target)
    if not unavailable:
        on_progress(f"checking parity on both models{startup_note(native.framework)}")
    result = Parity((), 0, (), unavailable) if unavailable else \
        parity(converted.native, converted.onnx_path, feeds, timeout_s, isolate)
    write_converted(Path(converted.onnx_path), out)
    return parity_lines(converted, signature, result, source), result


def write_converted(src: Path, out: Path) -> None:
    """The model file, and beside it every external data file it names (a model past protobuf's 2 GB keeps
    its weights there), each written whole or not at all."""
    import onnx

    for data in external_data_files(onnx.load(str(src), load_external_data=False), src):
        write_atomic(out.parent / data.relative_to(src.parent.resolve()), data.read_bytes())
    write_atomic(out, src.read_bytes())


def parity_lines(converted: Converted, signature: Signature, result: Parity, source: str) -> list[str]:
    native = converted.native

    def port(t: TensorInfo) -> str:
        dims = ", ".join("N" if i == 0 and not isinstance(d, int) else str(d if d is not None else "?")
                         for i, d in enumerate(t.shape or ()))
        return f"{t.name} {t.dtype} [{dims}]"

    lines = [f"converted {native.source or native.path} ({native.format}) — {'; '.join(converted.notes)}"
             + (" (cached)" if converted.cached else ""),
             f"inputs:  {', '.join(port(t) for t in signature.inputs)}",
             f"outputs: {', '.join(port(t) for t in signature.outputs)}"]
    if result.unchecked:
        return [*lines, f"parity: not checked — the native model cannot run here ({result.unchecked})"]
    lines += [f"parity, native vs ONNX on {source}:",
             f"  {'output':<20} {'max abs':>9} {'max rel':>9} {'cos':>10} {'agree':>8}"]
    for a in result.outputs:
        if not a.comparable:
            lines.append(f"  {a.name:<20} not comparable: {a.reason}")
            continue
        lines.append(f"  {a.name:<20} {_num(a.max_abs):>9} {_num(a.max_rel):>9} "
                     f"{fmt_cos(a.cosine) if a.cosine is not None else '-':>10} "
                     f"{f'{a.agree:.2%}' if a.agree is not None else '-':>8}")
    verdict = "ok" if result.ok else "OFF"
    lines.append(f"parity: {verdict} (max abs ≤ {PARITY_TOLERANCE:g} or max rel ≤ {PARITY_RELATIVE:g}, and every label "
                 f"equal, on {result.rows} items)")
    lines += [f"warning: {w}" for w in result.warnings]
    return lines


def fed_values(feeds: tuple[dict[str, Any], ...]) -> str:
    """What the synthetic feeds held, read from the arrays themselves rather than assumed: token ids are
    integers in a small range, masks all ones, and only the other floats are uniform in [0, 1)."""
    import numpy as np

    parts: list[str] = []
    for name in feeds[0] if feeds else {}:
        first = feeds[0][name]
        if first.ndim and first.shape[-1] > 1 and first.dtype.kind in "iu" and \
                (first == np.arange(first.shape[-1])).all():
            parts.append(f"{name} 0, 1, 2 … along the last axis")
            continue
        part = _fed(name, np.concatenate([np.ravel(f[name]) for f in feeds]))
        if part not in parts:  # several float inputs read as one "floats uniform [0, 1)"
            parts.append(part)
    return "; ".join(parts)


def _fed(name: str, values: Any) -> str:
    kind = values.dtype.kind
    if not values.size or kind not in "iuf":
        return "bools" if kind == "b" else f"{name} {values.dtype}"
    low, high = values.min().item(), values.max().item()
    if low == high:  # a mask: all ones
        return f"{name} all {low:g}"
    return "floats uniform [0, 1)" if kind == "f" else f"{name} integers in [{low}, {high}]"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"
