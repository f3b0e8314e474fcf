"""The GPU check of issue 6, as one script for a session that is lent the GPU machine (see
../shared/gpu/README.md for putting onnxruntime-gpu together there first):

    PYTHONPATH=/tmp/site:$PWD python3 benchmarks/gpu_check.py --out $OUT

1. A BERT-base-sized encoder (12 layers, hidden 768, built locally) at batch 32, sequence 128, and the small
   CNN at batch 32: perfkit runs on ort:cpu, ort:cuda, ort:cuda,iobinding with fp16; the runs are stored
   under results/baselines/h200/ (commit them).
   Target: fp16 + IOBinding at least 2× faster than fp32 (IOBinding too) on the encoder.
2. A PyTorch CNN beside -t ort:cuda, which adds the torch:cuda row.
3. perfkit's timing against CUDA events on the same IOBinding session and feeds, interleaved in blocks.
   Target: perfkit's median within 2 % of the CUDA-event median.

`--cpu-only` runs the same steps on ort:cpu with a smaller encoder and no CUDA events, to check the script
itself on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def encoder_runs(folder: Path, cpu_only: bool, results: str, log) -> dict:
    import onnx

    import perfkit
    from perfkit.examples import cnn, encoder

    path = folder / "encoder.onnx"
    onnx.save_model(encoder(layers=2 if cpu_only else 12), path)
    cnn_path = folder / "cnn.onnx"
    onnx.save_model(cnn(), cnn_path)
    targets = ("ort:cpu",) if cpu_only else ("ort:cpu", "ort:cuda", "ort:cuda,iobinding")
    figures = {}
    for name, model, dims, batch in (("encoder", path, ("sequence=128",), 4 if cpu_only else 32),
                                     ("cnn", cnn_path, (), 32)):
        report = perfkit.benchmark(str(model), targets=targets, variants=("fp16",), batch=(batch,), dims=dims,
                                   results_dir=results, quick=cpu_only)
        medians = {(r.model.label, r.target.label): r.summary.median for r in report.results if r.summary}
        for (label, target), median in sorted(medians.items()):
            log(f"{name} batch {batch}: {label:<6} on {target:<20} {median / 1e6:9.3f} ms")
        bound = "ort:cpu" if cpu_only else "ort:cuda,iobinding"
        if ("base", bound) in medians and ("fp16", bound) in medians:
            ratio = medians[("base", bound)] / medians[("fp16", bound)]
            log(f"{name}: fp16 vs fp32 on {bound}: {ratio:.2f}× (target on the GPU: ≥ 2× for the encoder)")
            figures[f"{name} fp16 speed-up on {bound}"] = ratio
        figures[f"{name} run"] = report.run_id
    return figures


def torch_rows(folder: Path, cpu_only: bool, results: str, log) -> dict:
    import torch

    import perfkit

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(32, 10)).eval()
    path = folder / "cnn.pt"
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 3, 64, 64)), path)
    targets = ("ort:cpu",) if cpu_only else ("ort:cpu", "ort:cuda,iobinding")
    report = perfkit.benchmark(str(path), targets=targets, shapes=("x=1x3x64x64",), batch=(16,), results_dir=results,
                               quick=cpu_only)
    out = {}
    for r in report.results:
        figure = f"{r.summary.median / 1e6:.3f} ms" if r.summary else f"{r.status}: {r.reason[:80]}"
        log(f"torch cnn: {r.model.label:<14} on {r.target.label:<20} {figure}")
        if r.summary:
            out[f"{r.model.label} on {r.target.label}"] = r.summary.median
    return out


def against_cuda_events(folder: Path, log, blocks: int = 20, calls: int = 200) -> dict:
    """The same IOBinding session and feed timed by perfkit's loop and by CUDA events, block by block."""
    import numpy as np
    import torch

    from perfkit.analysis.stats import summarize
    from perfkit.backends.ort import OrtBackend
    from perfkit.core.spec import Plan, parse_target
    from perfkit.measure.timing import measure

    session = OrtBackend().open(str(folder / "encoder.onnx"), parse_target("ort:cuda,iobinding"))
    feed = {"input_ids": np.ones((32, 128), np.int64), "attention_mask": np.ones((32, 128), np.int64),
            "token_type_ids": np.ones((32, 128), np.int64)}
    names = {i.name for i in session._session.get_inputs()}
    call = session.bind(session.prepare({k: v for k, v in feed.items() if k in names}))
    plan = Plan(warmup_calls=20, warmup_time_s=1.0, min_rounds=calls, max_rounds=calls, min_time_s=0.0,
                max_time_s=60.0, isolate=False)
    perfkit_ns, event_ns = [], []
    for _ in range(blocks):
        perfkit_ns += measure(call, plan).samples_ns
        for _ in range(calls):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            end.synchronize()
            event_ns.append(start.elapsed_time(end) * 1e6)
    ours, events = summarize(perfkit_ns).median, statistics.median(event_ns)
    log(f"encoder fp32 ort:cuda,iobinding: perfkit {ours / 1e6:.4f} ms, CUDA events {events / 1e6:.4f} ms, "
        f"ratio {ours / events:.4f} (target within 2 %)")
    session.close()
    return {"perfkit_median_ns": ours, "cuda_event_median_ns": events, "ratio": ours / events}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-check", help="folder for the log and figures")
    parser.add_argument("--cpu-only", action="store_true", help="check the script on a machine without a GPU")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The GPU runs are the baselines to commit; a CPU check of the script keeps its runs beside its log.
    results = str(out / "runs") if args.cpu_only else str(ROOT / "results" / "baselines" / "h200")
    lines: list[str] = []

    def log(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    started = time.time()
    figures = {"encoder": encoder_runs(out, args.cpu_only, results, log),
               "torch": torch_rows(out, args.cpu_only, results, log)}
    if not args.cpu_only:
        figures["cuda_events"] = against_cuda_events(out, log)
    log(f"done in {time.time() - started:.0f} s; runs kept in {results}")
    (out / "figures.json").write_text(json.dumps(figures, indent=1))
    (out / "log.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
