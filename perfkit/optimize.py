"""`perfkit optimize`: build the requested variants into a folder with a manifest, without timing them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from perfkit.bench import (
    SYNTHETIC_CALIBRATION,
    Broken,
    build,
    build_context,
    calibrate,
    feed,
    open_model,
    reference,
    resolve_chains,
)
from perfkit.env import fingerprint
from perfkit.model import disk_size, read_signature
from perfkit.spec import BenchSpec
from perfkit.store import write_atomic


def build_all(spec: BenchSpec, output_dir: str, on_progress: Callable[[str], None] = lambda _: None) -> dict:
    """Each variant's file (and external data) copied from the cache into output_dir; manifest.json lists
    every variant with its lineage, digest, size, notes, or why it could not be built."""
    native, model, proto = open_model(spec, on_progress)
    signature = read_signature(proto)
    first = feed(signature, spec.workloads[0], spec, compared=True)
    chains = resolve_chains(spec, proto)
    calibration = calibrate(spec, signature, first, chains)
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        from perfkit.errors import PerfkitError

        raise PerfkitError(output_dir, "exists and is not a folder", "give a folder for the variants")
    on_progress(f"reference outputs of {native.label if native else model.path} on {len(first.checks)} feeds")
    ref, why = reference(native or model.path, first, spec.plan)
    ctx = build_context(spec, first, calibration, ref)
    cpu_flags = fingerprint().cpu_flags
    entries = []
    out.mkdir(parents=True, exist_ok=True)
    for i, chain in enumerate(chains, 1):
        label = "+".join(s.label for s in chain)
        on_progress(f"[build {i}/{len(chains)}] {label}")
        variant = build(model, chain, ctx, spec, cpu_flags)
        if isinstance(variant, Broken):
            entries.append({"variant": label, "status": variant.status, "reason": variant.reason})
            continue
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
        entries.append({"variant": label, "status": "ok", "file": str(target), "lineage": variant.model.lineage,
                        "digest": variant.model.digest, "size_bytes": size, "nodes": sum(ops.values()),
                        "notes": list(variant.notes)})
    warnings = [SYNTHETIC_CALIBRATION] if calibration[0] and not spec.calibration else []
    if why:
        warnings.append(f"the model's own outputs could not be computed ({why}): fp16 was not checked against them")
    manifest = {"model": model.path, "digest": model.digest, "accuracy_budget": spec.accuracy_budget,
                "calibration": calibration[1], "variants": entries, "warnings": warnings}
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=1))
    return manifest


def file_name(label: str) -> str:
    """`ort-opt:all+int8-static:qdq,u8s8` -> `ort-opt_all+int8-static_qdq_u8s8.onnx`."""
    return "".join(c if c.isalnum() or c in "+-." else "_" for c in label) + ".onnx"
