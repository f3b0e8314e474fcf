"""perfkit on the field corpus (issue 13): real architectures with random weights, exported as their users export
them (benchmarks/field_corpus.py builds them outside the repo, in /tmp/perfkit-corpus or $PERFKIT_CORPUS).

Per model, three `perfkit bench` runs as a user types them, each as a subprocess with short timing:
  plain     perfkit bench FILE [the args it needs]
  auto      perfkit bench FILE [args] --variants auto [--calibration …]
  real      perfkit bench FILE --inputs inputs.npz   (real-looking token ids / smooth images; for a native file
            this is the native row beside its ONNX conversion on real data, with no --shape)
A native file (TorchScript .pt, .keras) gets its native row in every one of them (perfkit adds it itself;
--target only names onnxruntime targets).

Recorded per run: exit code, wall time, every row's variant, status and reason (built / skipped / failed),
speed-up and accuracy (`--format csv` gives the verdict's columns), the one error line, and for a run that exits
with an error the exception line and the deepest perfkit frame of a `--debug` rerun. The table goes to stdout
and to $PERFKIT_FIELD_REPORT (default /tmp/perfkit-corpus-runs/field_report.md, beside a .json of everything).
Runs and caches are kept under /tmp/perfkit-corpus-runs, never in the repo.

Slow (about 30-60 min on 2 cores for the whole corpus; building it first takes ~3 min), so `pytest benchmarks/`
skips it unless the file is named, `-m slow` is given or PERFKIT_FIELD=1:
    pytest benchmarks/test_field_corpus.py --benchmark-only -s
    PERFKIT_FIELD_ONLY=bert,resnet18 pytest benchmarks/test_field_corpus.py --benchmark-only -s
    python benchmarks/test_field_corpus.py [--only bert,resnet18] [--commands plain,auto]   # same, no pytest
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import field_corpus  # noqa: E402

pytestmark = pytest.mark.slow

RUNS = Path(os.environ.get("PERFKIT_FIELD_RUNS", "/tmp/perfkit-corpus-runs"))
REPORT = Path(os.environ.get("PERFKIT_FIELD_REPORT", str(RUNS / "field_report.md")))
TIMING = ["--min-time", "0.5", "--max-time", "2", "--timeout", "240"]
COMMAND_TIMEOUT = float(os.environ.get("PERFKIT_FIELD_TIMEOUT", "420"))
COMMANDS = ("plain", "auto", "real")
NAMES = [*field_corpus.BUILDERS, "mobilenetv2_onnx", "efficientnetb0_onnx"]


def selected() -> list[str]:
    only = os.environ.get("PERFKIT_FIELD_ONLY")
    return [n for n in NAMES if not only or n in only.split(",") or n.removesuffix("_onnx") in only.split(",")]


def command(entry: dict, which: str) -> list[str]:
    args = [entry["path"]]
    if which == "real":
        args += ["--inputs", entry["inputs"]] if entry.get("inputs") else entry["args"]
    else:
        args += entry["args"]
    if which == "auto":
        args += ["--variants", "auto", *entry.get("args_variants", [])]
    return ["bench", *args, *TIMING, "--results-dir", str(RUNS / "results"), "--cache-dir", str(RUNS / "cache")]


# A row that fails in a spawned worker comes back as one line; to say where, each worker's exception is also
# written, traceback and all, to $PK_TRACE by this hook (the harness's only; perfkit is not changed).
TRACE_HOOK = '''
import os, traceback
if os.environ.get("PK_TRACE"):
    try:
        import perfkit.measure.isolate as _iso
        _pack = _iso.pack
        def _traced(exc):
            with open(os.environ["PK_TRACE"], "a") as f:
                f.write(f"--- worker {os.getpid()}\\n")
                traceback.print_exception(exc, file=f)
            return _pack(exc)
        _iso.pack = _traced
    except Exception:
        pass
'''


def perfkit(argv: list[str], timeout: float, trace: Path | None = None) -> tuple[int, str, str, float]:
    exe = [sys.executable, "-m", "perfkit"]
    start = time.perf_counter()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("PERFKIT_DEBUG", None)
    if trace:
        site = RUNS / "site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").write_text(TRACE_HOOK)
        trace.unlink(missing_ok=True)
        env.update(PK_TRACE=str(trace), PYTHONPATH=os.pathsep.join(filter(None, [str(site),
                                                                                 env.get("PYTHONPATH")])))
    try:
        proc = subprocess.run([*exe, *argv], capture_output=True, text=True, timeout=timeout, env=env)
        return proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return -9, out, err + f"\n(killed: over {timeout:.0f} s)", time.perf_counter() - start


NOISE = re.compile(r"^(I0000|W0000|E0000|WARNING: All log messages|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] )")


def error_line(stderr: str) -> str:
    """The `perfkit: error: …` line, else the last line that is not TensorFlow's start-up chatter."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not NOISE.match(ln)]
    for ln in lines:
        if ln.startswith("perfkit: error:"):
            return ln
    return lines[-1] if lines else ""


def traceback_lines(stderr: str) -> dict:
    """The exception line of the last traceback, and its deepest frame inside perfkit (and the deepest of all)."""
    blocks = stderr.split("Traceback (most recent call last):")
    if len(blocks) < 2:
        return {}
    tb = blocks[-1]
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', tb)
    ours = [f for f in frames if "/perfkit/" in f[0] and "site-packages" not in f[0]]
    exc_lines = [ln for ln in tb.splitlines() if re.match(r"^[\w.]+(Error|Exception|Failed|Exit|Interrupt)\b", ln)]

    def fmt(f):
        return f"{f[0].split('/main/')[-1]}:{f[1]} in {f[2]}" if f else ""

    return {"exception": (exc_lines[-1] if exc_lines else tb.strip().splitlines()[-1])[:400],
            "perfkit_frame": fmt(ours[-1] if ours else None), "deepest_frame": fmt(frames[-1] if frames else None),
            "first_frame": fmt(frames[0] if frames else None)}


def worker_tracebacks(text: str) -> list[dict]:
    """Each worker exception the hook saw: exception line, deepest perfkit frame, deepest frame."""
    out = []
    for block in text.split("--- worker ")[1:]:
        tb = traceback_lines("Traceback (most recent call last):" + block.split("Traceback (most recent call last):",
                                                                               1)[-1])
        if tb and tb not in out:
            out.append(tb)
    return out


def read_rows(path: Path) -> list[dict]:
    if not path.is_file() or not path.stat().st_size:
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def num(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "None") else None
    except ValueError:
        return None


def run_case(entry: dict, which: str) -> dict:
    out = RUNS / "csv" / f"{entry['name']}-{which}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    argv = command(entry, which)
    trace = RUNS / "records" / f"{entry['name']}-{which}.workers.txt"
    trace.parent.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%H:%M:%S")
    rc, stdout, stderr, wall = perfkit([*argv, "--format", "csv", "-o", str(out)], COMMAND_TIMEOUT, trace)
    record = {"model": entry["name"], "command": which, "argv": "perfkit " + " ".join(argv), "rc": rc,
              "started": started, "wall_s": round(wall, 1), "error": error_line(stderr) if rc else "", "rows": []}
    for r in read_rows(out):
        record["rows"].append({
            "variant": r["variant"], "target": r["target"], "batch": r["batch"], "status": r["status"],
            "reason": r["reason"], "median_ms": (num(r["median_ns"]) or 0) / 1e6 or None,
            "speedup": num(r["speedup"]), "significant": r["speedup_significant"], "vs_native": num(r["vs_native"]),
            "cosine": num(r["cosine"]), "max_abs": num(r["max_abs"]), "agree": num(r["agree"]),
            "best": r["best"], "warnings": r["warnings"][:600]})
    if rc == 3:
        bad = [x for x in record["rows"] if x["status"] in ("failed", "invalid")]
        record["error"] = f"{len(bad)} row(s) failed: " + "; ".join(f"{x['variant']}: {x['reason'][:200]}"
                                                                    for x in bad)
    if trace.is_file():
        record["worker_tracebacks"] = worker_tracebacks(trace.read_text())
    if rc not in (0, 3):  # an error before any row: the --debug rerun's traceback says where
        if rc == -9:
            record["debug"] = {}
        else:
            drc, _, dstderr, _ = perfkit([*argv, "--format", "csv", "-o", str(out) + ".debug", "--debug"],
                                         COMMAND_TIMEOUT)
            record["debug"] = {"rc": drc, **traceback_lines(dstderr)}
    (RUNS / "records").mkdir(parents=True, exist_ok=True)
    (RUNS / "records" / f"{entry['name']}-{which}.json").write_text(json.dumps(record, indent=1))
    (RUNS / "records" / f"{entry['name']}-{which}.stderr").write_text(stderr)
    return record


def row_cell(row: dict) -> str:
    text = f"{row['variant']}: {row['status']}"
    if row["status"] == "ok":
        bits = []
        if row["speedup"] is not None:
            bits.append(f"{row['speedup']:.2f}×")
        if row["vs_native"] is not None:
            bits.append(f"{row['vs_native']:.2f}× native")
        if row["cosine"] is not None:
            bits.append(f"cos {row['cosine']:.4f}")
        if row["agree"] is not None:
            bits.append(f"agree {row['agree']:.2f}")
        if row["median_ms"]:
            bits.append(f"{row['median_ms']:.2f} ms")
        text += " (" + ", ".join(bits) + ")" if bits else ""
    elif row["reason"]:
        text += f" — {row['reason'][:220]}"
    return text.replace("|", "\\|")


def markdown(records: list[dict], corpus: dict) -> str:
    sizes = {m["name"]: m["size_bytes"] for m in corpus.get("models", [])}
    lines = ["# perfkit on the field corpus", "", f"corpus: `{corpus.get('folder')}`", "",
             "| model | MB | command | rc | s | rows: variant: status (speed-up, vs native, cosine, agree, median) "
             "| error / --debug |", "|---|---|---|---|---|---|---|"]
    for r in records:
        rows = "<br>".join(row_cell(x) for x in r["rows"]) or "—"
        err = r["error"].replace("|", "\\|")[:300]
        dbg = r.get("debug") or {}
        if dbg.get("exception"):
            err += f"<br>`{dbg['exception'][:200]}` at `{dbg.get('perfkit_frame') or dbg.get('deepest_frame')}`"
        if r["rc"] == 3:
            for tb in r.get("worker_tracebacks", []):
                if "Unsupported" not in tb["exception"]:
                    err += f"<br>worker: `{tb['exception'][:160]}` at `{tb['deepest_frame']}`"
        mb = f"{sizes.get(r['model'], 0) / 1e6:.0f}"
        lines.append(f"| {r['model']} | {mb} | {r['command']} | {r['rc']} | {r['wall_s']:.0f} | {rows} | {err} |")
    for f in corpus.get("failed_builds", []):
        lines.append(f"| {f['name']} | — | build | — | — | — | {f['error'][:300]} |")
    return "\n".join(lines) + "\n"


def write_report(records: list[dict], corpus: dict) -> str:
    text = markdown(records, corpus)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(text)
    REPORT.with_suffix(".json").write_text(json.dumps({"corpus": corpus, "records": records}, indent=1))
    return text


# ---- pytest -------------------------------------------------------------------------------------------------

RECORDS: list[dict] = []


def asked_for(config) -> bool:
    """This hour-long module runs only when asked: named on the command line, `-m slow`, or PERFKIT_FIELD=1;
    `pytest benchmarks/` alone skips it."""
    return (os.environ.get("PERFKIT_FIELD") == "1" or "slow" in (config.getoption("markexpr") or "")
            or any("test_field_corpus" in str(a) for a in config.args))


@pytest.fixture(scope="module")
def corpus(request):
    if not asked_for(request.config):
        pytest.skip("slow (about an hour): name the file, or give -m slow or PERFKIT_FIELD=1")
    wanted = sorted({n.removesuffix("_onnx") for n in selected()})
    manifest = field_corpus.build(only=wanted)
    yield manifest
    print("\n" + write_report(RECORDS, manifest))


@pytest.mark.parametrize("name", NAMES)
def test_field_model(benchmark, corpus, name):
    if name not in selected():
        pytest.skip("not in PERFKIT_FIELD_ONLY")
    entries = {m["name"]: m for m in corpus["models"]}
    if name not in entries:
        pytest.fail(f"{name} was not built: " + "; ".join(f["error"][:300] for f in corpus["failed_builds"]
                                                         if f["name"] == name.removesuffix("_onnx")))
    records = [run_case(entries[name], which) for which in COMMANDS]
    RECORDS.extend(records)
    benchmark.extra_info.update(records={r["command"]: {k: r[k] for k in ("rc", "wall_s", "error")} for r in records})
    benchmark.pedantic(lambda: None, rounds=1)  # the figures above are the result
    bad = [f"{r['command']}: rc {r['rc']} {r['error'] or '; '.join(x['reason'] for x in r['rows'] if x['reason'])}"
           for r in records if r["rc"] != 0]
    assert not bad, f"{name}: " + " | ".join(bad)


# ---- as a script ----------------------------------------------------------------------------------------------

def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="perfkit on the field corpus, without pytest")
    parser.add_argument("--only", help="comma-separated model names (default: all)")
    parser.add_argument("--commands", default=",".join(COMMANDS))
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: the table of the latest saved record of each model and command")
    args = parser.parse_args()
    if args.report_only:
        manifest = json.loads((field_corpus.corpus_dir() / "manifest.json").read_text())
        saved = {p.stem: json.loads(p.read_text()) for p in (RUNS / "records").glob("*.json")}
        order = [f"{n}-{c}" for n in NAMES for c in COMMANDS]
        print(write_report([saved[k] for k in order if k in saved], manifest))
        return
    if args.only:
        os.environ["PERFKIT_FIELD_ONLY"] = args.only
    manifest = field_corpus.build(only=sorted({n.removesuffix("_onnx") for n in selected()}))
    entries = {m["name"]: m for m in manifest["models"]}
    records = []
    for name in selected():
        if name not in entries:
            continue
        for which in args.commands.split(","):
            r = run_case(entries[name], which)
            records.append(r)
            print(f"{name:20} {which:6} rc={r['rc']:3} {r['wall_s']:6.0f}s  {r['error'][:160]}", flush=True)
            write_report(records, manifest)
    print(write_report(records, manifest))


if __name__ == "__main__":
    main()
