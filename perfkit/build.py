"""`perfkit optimize`: build the requested variants into a folder with a manifest, without timing them."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from perfkit.core.errors import PerfkitError
from perfkit.core.spec import BenchSpec
from perfkit.files.onnx_file import disk_size
from perfkit.measure.env import fingerprint
from perfkit.measure.workload import SYNTHETIC_CALIBRATION
from perfkit.output.store import write_atomic
from perfkit.prepare import Prepared, Progress, ReferenceRun, build_variants, prepare, references
from perfkit.transforms.cache import Broken, Variant


@dataclass(frozen=True)
class BuiltVariant:
    """One entry of the manifest: the variant's file, or why it could not be built."""

    variant: str  # the chain as a label
    status: str  # ok, skipped, failed
    reason: str = ""
    file: str = ""
    lineage: tuple[str, ...] = ()
    digest: str = ""
    size_bytes: int = 0
    nodes: int = 0
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        if self.status != "ok":
            return {"variant": self.variant, "status": self.status, "reason": self.reason}
        return {"variant": self.variant, "status": self.status, "file": self.file, "lineage": list(self.lineage),
                "digest": self.digest, "size_bytes": self.size_bytes, "nodes": self.nodes, "notes": list(self.notes)}


@dataclass(frozen=True)
class Manifest:
    """What `perfkit optimize` wrote: manifest.json in the output folder."""

    model: str
    digest: str
    accuracy_budget: str
    calibration: str
    variants: tuple[BuiltVariant, ...] = ()
    warnings: tuple[str, ...] = ()

    def as_json(self) -> str:
        data = {**asdict(self), "variants": [v.as_dict() for v in self.variants], "warnings": list(self.warnings)}
        return json.dumps(data, indent=1)


def build_all(spec: BenchSpec, output_dir: str, on_progress: Progress = lambda _: None) -> Manifest:
    """Each variant's file (and external data) copied from the cache into output_dir; manifest.json lists
    every variant with its lineage, digest, size, notes, or why it could not be built."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise PerfkitError(output_dir, "exists and is not a folder", "give a folder for the variants")
    prepared = prepare(spec, on_progress, compare=True)
    ref = references(prepared, on_progress)[0]  # `perfkit optimize` has one workload
    built = build_variants(prepared, ref.outputs, fingerprint().cpu_flags, on_progress)
    out.mkdir(parents=True, exist_ok=True)
    entries = tuple(_keep(variant, "+".join(s.label for s in chain), out)
                    for variant, chain in zip(built, prepared.chains, strict=True))
    manifest = Manifest(model=prepared.model.path, digest=prepared.model.digest,
                        accuracy_budget=prepared.spec.accuracy_budget, calibration=prepared.calibration.source,
                        variants=entries, warnings=tuple(_warnings(prepared, ref)))
    write_atomic(out / "manifest.json", manifest.as_json())
    return manifest


def _keep(variant: Variant | Broken, label: str, out: Path) -> BuiltVariant:
    """The variant's files copied out of the cache; external data kept beside its model in a folder of its own."""
    if isinstance(variant, Broken):
        return BuiltVariant(label, variant.status, variant.reason)
    source = Path(variant.model.path)
    data = [p for p in source.parent.iterdir() if p.name.startswith(source.name + ".")]
    if data:  # external data is named inside the model: keep the pair together in a folder of its own
        target = out / file_name(label).removesuffix(".onnx") / source.name
        target.parent.mkdir(exist_ok=True)
        for p in data:
            shutil.copyfile(p, target.parent / p.name)
    else:
        target = out / file_name(label)
    shutil.copyfile(source, target)
    size, ops = disk_size(variant.model.path)
    return BuiltVariant(label, "ok", file=str(target), lineage=variant.model.lineage, digest=variant.model.digest,
                        size_bytes=size, nodes=sum(ops.values()), notes=variant.notes)


def _warnings(prepared: Prepared, ref: ReferenceRun) -> list[str]:
    warnings = list(prepared.warnings)
    if prepared.calibration.synthetic and not prepared.spec.calibration:
        warnings.append(SYNTHETIC_CALIBRATION)
    if ref.error:
        warnings.append(f"the model's own outputs could not be computed ({ref.error}): fp16 was not checked "
                        "against them")
    return warnings


def file_name(label: str) -> str:
    """`ort-opt:all+int8-static:qdq,u8s8` -> `ort-opt_all+int8-static_qdq_u8s8.onnx`."""
    return "".join(c if c.isalnum() or c in "+-." else "_" for c in label) + ".onnx"
