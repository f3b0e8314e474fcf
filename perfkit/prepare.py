"""The pipeline `perfkit bench`, `perfkit optimize` and the pytest plugin share: the model opened (a native one
converted to ONNX, cached), its feeds, the variant chains, the calibration feeds, and the reference outputs
every row is compared with; then the variants built from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from perfkit.analysis.accuracy import parse_budget
from perfkit.core.model import EXPORTED, Model, NativeModel, Signature
from perfkit.core.records import Outputs
from perfkit.core.spec import BenchSpec, Target
from perfkit.files.onnx_file import op_histogram, open_onnx, read_signature
from perfkit.measure.case import reference_outputs
from perfkit.measure.isolate import Failure, call_guarded
from perfkit.measure.workload import Calibration, FeedSet, calibration_feeds, feed_set
from perfkit.native.conversion import convert
from perfkit.native.detect import is_native, prepare_native
from perfkit.transforms import BuildContext, Step, parse_chain
from perfkit.transforms.auto import auto_chains, model_kind
from perfkit.transforms.cache import Broken, Variant, build_variant

if TYPE_CHECKING:
    import onnx

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Reference:
    """What one workload's rows are compared with: outputs, or why there are none."""

    outputs: Outputs | None
    error: str = ""  # no reference at all: why it could not run
    native_error: str = ""  # the native model failed on the check feeds: these are its conversion's outputs


@dataclass(frozen=True, kw_only=True)
class Prepared:
    spec: BenchSpec  # as run: a native model's example shapes step aside for --batch
    native: NativeModel | None
    model: Model  # the ONNX model (a native model's conversion): the base of the variants
    signature: Signature
    chains: tuple[tuple[Step, ...], ...]  # `auto` expanded, each chain once
    feeds: tuple[FeedSet, ...]  # one per workload
    calibration: Calibration  # empty unless a chain quantizes statically
    references: tuple[Reference, ...]  # one per workload; no outputs when nothing is compared

    @property
    def subject(self) -> str:
        """What the reference outputs come from, in words."""
        return self.native.label if self.native else self.model.path


def prepare(spec: BenchSpec, on_progress: Progress = lambda _: None, compare: bool | None = None) -> Prepared:
    """Everything before the first variant is built. `compare` (default: when there are variants or a native
    model) makes the check feeds and the reference outputs."""
    native, model, proto = open_model(spec, on_progress)
    if native:
        spec = batch_over_example_shapes(spec)
    signature = read_signature(proto)
    compare = bool(spec.variants or native) if compare is None else compare
    feeds = tuple(feed_set(signature, wl, checks=spec.check_feeds if compare else 0, subject=spec.model)
                  for wl in spec.workloads)
    chains = resolve_chains(spec, proto)
    calibration = Calibration()
    if any(s.name == "int8-static" for chain in chains for s in chain):
        calibration = calibration_feeds(signature, feeds[0].shapes, spec.calibration, spec.workloads[0].seed,
                                        len(feeds[0].checks))
    if compare:
        on_progress(f"reference outputs of {native.label if native else model.path} on {len(feeds[0].checks)} "
                    "feeds")
    references = tuple(reference(f, native, model.path, spec) if compare else Reference(None) for f in feeds)
    return Prepared(spec=spec, native=native, model=model, signature=signature, chains=chains, feeds=feeds,
                    calibration=calibration, references=references)


def open_model(spec: BenchSpec, on_progress: Progress) -> tuple[NativeModel | None, Model, onnx.ModelProto]:
    """An ONNX file as it is; a native model with its ONNX conversion (cached), which is then the base of
    the variants."""
    if not is_native(spec.model):
        model, proto = open_onnx(spec.model)
        return None, model, proto
    native = prepare_native(spec.model, spec.trust, spec.factory)
    on_progress(f"converting {spec.model} ({native.format}) to ONNX")
    shapes = tuple(s for wl in spec.workloads[:1] for s in wl.shapes)
    converted = convert(native, cache_dir=spec.cache_dir, opset=spec.opset, shapes=shapes,
                        data=spec.workloads[0].inputs, float64=spec.float64, timeout_s=spec.plan.timeout_s,
                        isolate=spec.plan.isolate)
    model, proto = open_onnx(converted.onnx_path)
    return converted.native, replace(model, lineage=(EXPORTED,)), proto


def batch_over_example_shapes(spec: BenchSpec) -> BenchSpec:
    """For a native model --shape gives the export its example input; with --batch the conversion's free
    batch axis takes each size, so the example shapes step aside."""
    if all(wl.batch is None for wl in spec.workloads):
        return spec
    return replace(spec, workloads=tuple(replace(wl, shapes=()) for wl in spec.workloads))


def resolve_chains(spec: BenchSpec, proto: onnx.ModelProto) -> tuple[tuple[Step, ...], ...]:
    """The spec's chains, `auto` expanded for this model and these targets, each once, in order."""
    texts: list[str] = []
    for text in spec.variants:
        if text == "auto":
            gpu = any(t.device != "cpu" for t in spec.targets)
            texts += auto_chains(model_kind(op_histogram(proto)), gpu)
        else:
            texts.append(text)
    return tuple(parse_chain(t) for t in dict.fromkeys(texts))


def reference(f: FeedSet, native: NativeModel | None, model_path: str, spec: BenchSpec) -> Reference:
    """The native model's outputs on the check feeds, else the ONNX model's as written; when the native model
    fails and there are variants, they are compared with the conversion they were built from."""
    got = call_guarded(reference_outputs, (native or model_path, f.checks), spec.plan.timeout_s, spec.plan.isolate)
    if not isinstance(got, Failure):
        return Reference(got)
    if not (native and spec.variants):
        return Reference(None, error=got.reason)
    fallback = call_guarded(reference_outputs, (model_path, f.checks), spec.plan.timeout_s, spec.plan.isolate)
    if isinstance(fallback, Failure):
        return Reference(None, error=fallback.reason, native_error=got.reason)
    return Reference(fallback, native_error=got.reason)


def build_context(prepared: Prepared) -> BuildContext:
    """What the transforms get: calibration feeds, and for fp16's repair the first workload's check feeds,
    the reference outputs on them and the budget."""
    return BuildContext(calibration=prepared.calibration.feeds, calibration_source=prepared.calibration.source,
                        check_feeds=prepared.feeds[0].checks, reference=prepared.references[0].outputs,
                        budget=parse_budget(prepared.spec.accuracy_budget))


def build_variants(prepared: Prepared, cpu_flags: tuple[str, ...], on_progress: Progress
                   ) -> list[Variant | Broken]:
    """Each chain built from the base model (cached), in order; one that cannot be built is a Broken entry."""
    ctx, spec, chains = build_context(prepared), prepared.spec, prepared.chains
    built: list[Variant | Broken] = []
    for i, chain in enumerate(chains, 1):
        on_progress(f"[build {i}/{len(chains)}] {'+'.join(s.label for s in chain)}")
        built.append(build_variant(prepared.model, chain, ctx, spec.cache_dir, spec.plan.timeout_s,
                                   spec.plan.isolate, cpu_flags))
    return built


def native_target(native: NativeModel, spec: BenchSpec) -> Target:
    """The native model runs on the CPU in its own framework, with the threads asked of onnxruntime."""
    return Target(native.framework, "cpu", threads=spec.targets[0].threads)


def native_targets(native: NativeModel, spec: BenchSpec) -> list[Target]:
    """The CPU, and for a PyTorch model also torch:cuda when a GPU target was asked for."""
    targets = [native_target(native, spec)]
    if native.framework == "torch" and any(t.device in ("cuda", "tensorrt") for t in spec.targets):
        device_id = next((dict(t.provider_options).get("device_id") for t in spec.targets if t.gpu), None)
        targets.append(Target("torch", "cuda", (("device_id", device_id),) if device_id else ()))
    return targets


def session_target(variant: Variant, target: Target) -> Target:
    """A file that ends in `ort-opt:LEVEL` already holds that optimization: its session runs with graph
    optimization off (as onnxruntime advises for offline-optimized models), so the row shows what LEVEL
    does, not what the session's own level would redo."""
    if variant.model.lineage and variant.model.lineage[-1].startswith("ort-opt"):
        return replace(target, opt_level="disable")
    return target
