"""The pipeline `perfkit bench`, `perfkit optimize` and the pytest plugin share: the model opened (a native one
converted to ONNX, cached), its feeds (the --eval samples as check feeds), the variant chains and the calibration
feeds (`prepare`); the reference outputs every row is compared with, and its task metrics on the --eval labels
(`references`); then the variants built from it (`build_variants`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from perfkit.analysis.accuracy import parse_budget
from perfkit.analysis.task import check_terms, reference_task
from perfkit.core.model import EXPORTED, Model, NativeModel, Signature
from perfkit.core.records import Outputs, TaskAccuracy
from perfkit.core.search import TunedConfig
from perfkit.core.spec import BenchSpec
from perfkit.files.onnx_file import feature_outputs, op_histogram, open_onnx, read_signature
from perfkit.files.onnx_types import fp16_compute
from perfkit.files.tuned import read_config
from perfkit.measure.case import reference_outputs
from perfkit.measure.isolate import Failure, call_guarded
from perfkit.measure.workload import Calibration, FeedSet, calibration_feeds, feed_set, read_labelled, read_samples
from perfkit.native.conversion import convert
from perfkit.native.detect import is_native, prepare_native
from perfkit.native.frameworks import startup_note
from perfkit.transforms import BuildContext, Step, parse_chain
from perfkit.transforms.auto import auto_chains, model_kind
from perfkit.transforms.cache import Broken, Variant, build_variant
from perfkit.transforms.upgrade import upgrade_opset

if TYPE_CHECKING:
    import onnx

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReferenceRun:
    """What one workload's rows are compared with: the reference outputs, or why there are none."""

    outputs: Outputs | None
    error: str = ""  # no reference at all: why it could not run
    native_error: str = ""  # the native model failed on the check feeds: these are its conversion's outputs
    task: TaskAccuracy | None = None  # --eval: the reference's task metrics, and the output every row is judged on


@dataclass(frozen=True, kw_only=True)
class Prepared:
    spec: BenchSpec  # as run: a native model's example shapes step aside for --batch
    native: NativeModel | None
    model: Model  # the ONNX model (a native model's conversion): the base of the variants
    signature: Signature
    chains: tuple[tuple[Step, ...], ...]  # `auto` expanded, each chain once
    feeds: tuple[FeedSet, ...]  # one per workload; with check feeds when rows are compared (and --eval's labels)
    calibration: Calibration  # empty unless a chain quantizes statically
    compared: bool  # rows carry accuracy against a reference (variants, or a native model)
    features: tuple[str, ...] = ()  # outputs that are features by their last op: no label agreement on them
    tuned: TunedConfig | None = None  # --config: measured beside the model, on its own session
    tuned_model: Model | None = None  # its model file, read once (digest, lineage-less)
    warnings: tuple[str, ...] = ()  # what the run must be read with: the model was upgraded (--upgrade-opset)
    fp16_ops: tuple[str, ...] = ()  # the model as given computes in float16: its compute ops fed float16


def prepare(spec: BenchSpec, on_progress: Progress = lambda _: None, compare: bool | None = None) -> Prepared:
    """Everything that reads the user's input, before anything is measured: the model (converted when
    native), feeds, chains and calibration. `compare` (default: when there are variants, a native model or
    --eval data) adds the check feeds every row is compared on: the --eval samples, with their labels, if any."""
    native, model, proto = open_model(spec, on_progress)
    upgraded = upgrade_opset(model, proto, spec.cache_dir, spec.plan.timeout_s, spec.plan.isolate) \
        if spec.upgrade_opset and not native else None
    if upgraded:
        model, proto = upgraded.model, upgraded.proto
    if native:
        spec = batch_over_example_shapes(spec)
    signature = read_signature(proto)
    compare = bool(spec.variants or native or spec.eval or spec.config) if compare is None else compare
    labelled = read_labelled(spec.eval, signature, spec.label_column) if spec.eval and compare else None
    # Accuracy is judged on the user's data whenever there is some: --eval, --inputs, else calibration held out.
    hold_out = compare and not labelled and not all(wl.inputs for wl in spec.workloads)
    samples = read_samples(spec.calibration, signature, hold_out) if spec.calibration else None
    feeds = tuple(feed_set(signature, wl, checks=spec.check_feeds if compare else 0, subject=spec.model,
                           samples=samples, labelled=labelled) for wl in spec.workloads)
    chains = resolve_chains(spec, proto)
    calibration = Calibration()
    if any(s.name == "int8-static" for chain in chains for s in chain):
        calibration = calibration_feeds(signature, feeds[0].shapes, samples, spec.workloads[0].seed,
                                        len(feeds[0].checks))
    tuned = read_config(spec.config) if spec.config else None
    return Prepared(spec=spec, native=native, model=model, signature=signature, chains=chains, feeds=feeds,
                    calibration=calibration, compared=compare, features=feature_outputs(proto),
                    tuned=tuned, tuned_model=open_onnx(tuned.model)[0] if tuned else None,
                    warnings=(upgraded.warning,) if upgraded else (), fp16_ops=() if native else fp16_compute(proto))


def model_warnings(prepared: Prepared) -> tuple[str, ...]:
    """What the model as given makes every run of it be read with: it was upgraded (--upgrade-opset); it computes
    in fp16 and has CPU rows (a variant perfkit made fp16 says so in its own name)."""
    cpu = [t.label for t in prepared.spec.targets if t.device == "cpu"]
    if not prepared.fp16_ops or not cpu:
        return prepared.warnings
    return (*prepared.warnings, f"{prepared.spec.model} computes in float16 ({', '.join(prepared.fp16_ops)} fed "
            f"float16): most of onnxruntime's CPU kernels are float32, so on {', '.join(cpu)} float16 is emulated "
            "with casts and the latency is not what an fp16 GPU gives — measure the fp32 model on the CPU, or this "
            "one on a GPU (--target ort:cuda)")


def references(prepared: Prepared, on_progress: Progress = lambda _: None, *,
               fall_back_to_conversion: bool = False) -> tuple[ReferenceRun, ...]:
    """Per workload, the outputs its rows are compared with: the native model's, else the ONNX model's as
    written; nothing when nothing is compared. `fall_back_to_conversion`: when the native model fails on the
    check feeds, compare with the conversion the variants were built from instead (`perfkit bench`). With
    --eval, the reference's task metrics too: labels that do not fit its outputs are a PerfkitError here."""
    if not prepared.compared:
        return tuple(ReferenceRun(None) for _ in prepared.feeds)
    native, model = prepared.native, prepared.model
    on_progress(f"reference outputs of {native.label if native else model.path} on "
                f"{len(prepared.feeds[0].checks)} feeds{startup_note(native.framework if native else None)}")
    fall_back = fall_back_to_conversion and native is not None and bool(prepared.spec.variants)
    runs = (_reference(f, native, model.path, prepared.spec, fall_back) for f in prepared.feeds)
    runs = (replace(r, outputs=replace(r.outputs, features=prepared.features)) if r.outputs else r for r in runs)
    return tuple(with_task(r, f, prepared.spec) for r, f in zip(runs, prepared.feeds, strict=True))


def with_task(run: ReferenceRun, feeds: FeedSet, spec: BenchSpec) -> ReferenceRun:
    """The reference's task metrics on the workload's --eval labels, the labels and the budget's task terms
    checked against its outputs (a PerfkitError, before anything is timed); the run as it is without labels."""
    if feeds.labels is None or run.outputs is None:
        return run
    subject = spec.eval or "--eval"
    task = reference_task(run.outputs, feeds.labels, subject)
    check_terms(parse_budget(spec.accuracy_budget), task, subject)
    return replace(run, task=task)


def _reference(f: FeedSet, native: NativeModel | None, model_path: str, spec: BenchSpec,
               fall_back: bool) -> ReferenceRun:
    got = call_guarded(reference_outputs, (native or model_path, f.checks), spec.plan.timeout_s, spec.plan.isolate)
    if not isinstance(got, Failure):
        return ReferenceRun(got)
    if not fall_back:
        return ReferenceRun(None, error=got.reason)
    conversion = call_guarded(reference_outputs, (model_path, f.checks), spec.plan.timeout_s, spec.plan.isolate)
    if isinstance(conversion, Failure):
        return ReferenceRun(None, error=conversion.reason, native_error=got.reason)
    return ReferenceRun(conversion, native_error=got.reason)


def open_model(spec: BenchSpec, on_progress: Progress) -> tuple[NativeModel | None, Model, onnx.ModelProto]:
    """An ONNX file as it is; a native model with its ONNX conversion (cached), which is then the base of
    the variants."""
    if not is_native(spec.model):
        model, proto = open_onnx(spec.model)
        return None, model, proto
    native = prepare_native(spec.model, spec.trust, spec.factory, spec.hints)
    on_progress(f"converting {spec.model} ({native.format}) to ONNX{startup_note(native.framework)}")
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


def build_context(prepared: Prepared, reference: Outputs | None) -> BuildContext:
    """What the transforms get: calibration feeds, and for fp16's repair the first workload's check feeds,
    the reference outputs on them and the budget."""
    return BuildContext(calibration=prepared.calibration.feeds, calibration_source=prepared.calibration.source,
                        check_feeds=prepared.feeds[0].checks, reference=reference,
                        budget=parse_budget(prepared.spec.accuracy_budget).on_outputs(), source=prepared.spec.model)


def build_variants(prepared: Prepared, reference: Outputs | None, cpu_flags: tuple[str, ...],
                   on_progress: Progress) -> list[Variant | Broken]:
    """Each chain built from the base model (cached), in order; one that cannot be built is a Broken entry.
    `reference`: the first workload's reference outputs, which fp16's repair keeps to the budget."""
    ctx, spec, chains = build_context(prepared, reference), prepared.spec, prepared.chains
    built: list[Variant | Broken] = []
    for i, chain in enumerate(chains, 1):
        on_progress(f"[build {i}/{len(chains)}] {'+'.join(s.label for s in chain)}")
        built.append(build_variant(prepared.model, chain, ctx, spec.cache_dir, spec.plan.timeout_s,
                                   spec.plan.isolate, cpu_flags))
    return built
