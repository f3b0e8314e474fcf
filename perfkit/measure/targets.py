"""Which of the targets asked for this machine can run: a missing GPU makes skipped rows while another target
runs; any other missing provider, every target missing, or a model onnxruntime will not load is the user's
error (unless --allow-fallback)."""

from __future__ import annotations

from perfkit.backends import get_backend
from perfkit.core.errors import CaseFailed, PerfkitError
from perfkit.core.model import Model
from perfkit.core.spec import BenchSpec, Target
from perfkit.measure.isolate import call_in

SKIPPED_GPU = "no GPU row is measured here, and none pretends"


def check_targets(model: Model, spec: BenchSpec) -> dict[str, str]:
    """{target label: why it is skipped} for GPU targets this machine cannot run while another target can."""
    skipped = _missing_gpus(spec)
    runnable = tuple(t for t in spec.targets if t.label not in skipped)
    try:
        ran = call_in(open_each, (model.path, runnable), spec.plan.timeout_s, spec.plan.isolate)
    except CaseFailed as exc:
        raise PerfkitError(model.path, f"onnxruntime failed while loading it: {exc}",
                           "check the model with onnx.checker.check_model, or report it to onnxruntime") from None
    for target, (requested, providers) in zip(runnable, ran, strict=True):
        if providers[0] == requested or spec.allow_fallback:
            continue
        if target.gpu and len(runnable) > 1:
            skipped[target.label] = (f"asked for {requested}, onnxruntime ran {providers[0]}: the provider is there "
                                     "but cannot run here (no device, or its libraries are missing)")
            continue
        raise PerfkitError(f"--target {target.label}", f"asked for {requested}, onnxruntime ran {providers[0]}",
                           "fix the provider's libraries, or pass --allow-fallback")
    return skipped


def _missing_gpus(spec: BenchSpec) -> dict[str, str]:
    """GPU targets whose provider is not in this onnxruntime, with the reason; a missing CPU-side provider,
    or no target left at all, is an error."""
    skipped: dict[str, str] = {}
    for target in spec.targets:
        reason = get_backend(target.backend).unavailable(target)
        if not reason or spec.allow_fallback and "not installed" not in reason:
            continue
        if not target.gpu:
            raise PerfkitError(f"--target {target.label}", reason,
                               "pick one of those, or pass --allow-fallback to run on what is there")
        skipped[target.label] = f"{reason} — {SKIPPED_GPU}"
    if all(t.label in skipped for t in spec.targets):
        target = spec.targets[0]
        raise PerfkitError(f"--target {target.label}", skipped[target.label].split(" — ")[0],
                           "install perfkit[gpu] on a machine with an NVIDIA GPU, add --target ort:cpu, or pass "
                           "--allow-fallback to run on what is there")
    return skipped


def open_each(arg: tuple[str, tuple[Target, ...]]) -> list[tuple[str, tuple[str, ...]]]:
    """Load the model on every target once: (requested provider, providers that ran) for each."""
    path, targets = arg
    out = []
    for target in targets:
        with get_backend(target.backend).open(path, target) as session:
            out.append((session.settings.get("requested", ""), session.providers))
    return out
