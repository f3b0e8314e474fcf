"""perfkit-tuned.json, both ways: a TunedConfig written with onnxruntime's own names (SessionOptions
attributes, session config keys, provider options), so a plain onnxruntime script can apply it as written; read
back and checked, with what differs from where it was tuned; and the Python snippet that opens that session.

Format 1:
    {"format": "perfkit-tuned", "version": 1,
     "model": {"path": "model.onnx", "sha256": …, "lineage": [...]},
     "tuned_from": {"path": …, "sha256": …},
     "provider": "CPUExecutionProvider", "provider_options": {…}, "target": "ort:cpu", "modes": [],
     "session_options": {"intra_op_num_threads": 2, "graph_optimization_level": "ORT_ENABLE_ALL", …},
     "session_config": {"session.intra_op.allow_spinning": "0", …},
     "inputs": {"batch": 8, "shapes": {"x": [8, 3, 224, 224]}},
     "objective": "median", "speedup": {"value", "low", "high", "rounds", "significant", "against"},
     "latency_ns": {"tuned": …, "default": …}, "accuracy": {"budget", "outputs": [...]},
     "environment": {…}, "perfkit_version": …, "created": …}
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from perfkit.core.errors import PerfkitError
from perfkit.core.records import Environment, OutputAccuracy, Ratio
from perfkit.core.search import TunedConfig
from perfkit.core.spec import MODES, OPT_LEVELS, PROVIDER_OPTIONS, PROVIDERS, SESSION_CONFIG, SESSION_OPTIONS, Target
from perfkit.core.spec import OPT_LEVEL_NAMES as LEVEL_NAMES

FORMAT, VERSION = "perfkit-tuned", 1
CONFIG_NAME = "perfkit-tuned.json"
SNIPPET_NAME = "run_tuned.py"
FEED_NAME = "inputs.npz"  # the feed the tuned row was timed with, for the snippet
MACHINE_FIELDS = (("cpu_model", "CPU"), ("logical_cores", "logical cores"), ("physical_cores", "physical cores"))
RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu")


def session_options(target: Target) -> dict[str, Any]:
    """The target's SessionOptions attributes under onnxruntime's names and types."""
    out: dict[str, Any] = {"intra_op_num_threads": target.threads or 0,
                           "graph_optimization_level": LEVEL_NAMES[target.opt_level]}
    for key, value in target.session_options:
        out[key] = int(value) if SESSION_OPTIONS.get(key) == "int" else \
            value == "1" if SESSION_OPTIONS.get(key) == ("0", "1") else value
    return out


def to_json(config: TunedConfig, folder: Path) -> str:
    t = config.target
    speedup = None if config.speedup is None else {
        **dataclasses.asdict(config.speedup),
        "against": "onnxruntime's default session on the model as given, timed interleaved in the same rounds"}
    data = {
        "format": FORMAT, "version": VERSION,
        "model": {"path": _relative(config.model, folder), "sha256": config.model_digest,
                  "lineage": list(config.lineage)},
        "tuned_from": {"path": config.tuned_from, "sha256": config.tuned_from_digest},
        "provider": PROVIDERS.get(t.device, t.device), "provider_options": dict(t.provider_options),
        "target": t.label, "modes": list(t.modes),
        "session_options": session_options(t), "session_config": dict(t.session_config),
        "inputs": {"batch": config.batch, "shapes": {name: list(shape) for name, shape in config.shapes}},
        "objective": config.objective, "speedup": speedup,
        "latency_ns": {"tuned": config.latency_ns, "default": config.default_latency_ns},
        "accuracy": {"budget": config.budget, "outputs": [dataclasses.asdict(a) for a in config.accuracy]},
        "environment": dataclasses.asdict(config.environment),
        "perfkit_version": config.perfkit_version, "created": config.created, "caveats": list(config.caveats),
    }
    return json.dumps(data, indent=1, allow_nan=False, default=str)


def _relative(path: str, folder: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(Path(path).resolve())


def read_config(path_text: str) -> TunedConfig:
    """perfkit-tuned.json checked: its format, its model file (relative to the config), its session settings.
    Every problem is one PerfkitError naming the file."""
    path = Path(path_text)
    if not path.is_file():
        raise PerfkitError(path_text, "no such file" if not path.exists() else "not a file",
                           "give the perfkit-tuned.json that `perfkit tune -o DIR` wrote")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise PerfkitError(path_text, "not JSON", "give the perfkit-tuned.json that `perfkit tune` wrote") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PerfkitError(path_text, "not a perfkit-tuned config (no \"format\": \"perfkit-tuned\")",
                           "give the perfkit-tuned.json that `perfkit tune -o DIR` wrote")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise PerfkitError(path_text, f"config version {data.get('version')!r} is newer than this perfkit reads "
                           f"(≤ {VERSION})", "upgrade perfkit")
    try:
        return _config(data, path)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PerfkitError(path_text, f"config is damaged or incomplete ({type(exc).__name__}: {exc})",
                           "run perfkit tune again to write it") from None


def _config(data: dict[str, Any], path: Path) -> TunedConfig:
    model = path.parent / data["model"]["path"]
    if not model.is_file():
        raise PerfkitError(str(path), f"its model file {data['model']['path']} is not there ({model})",
                           "keep the tuned folder together, or run perfkit tune again")
    accuracy = data.get("accuracy") or {}
    speedup = data.get("speedup")
    return TunedConfig(
        model=str(model), model_digest=data["model"]["sha256"], lineage=tuple(data["model"].get("lineage", ())),
        tuned_from=data["tuned_from"]["path"], tuned_from_digest=data["tuned_from"]["sha256"],
        target=target_of(data, str(path)), batch=int(data["inputs"]["batch"]),
        shapes=tuple((k, tuple(int(d) for d in v)) for k, v in data["inputs"]["shapes"].items()),
        objective=data.get("objective", "median"),
        speedup=None if not speedup else Ratio(float(speedup["value"]), float(speedup["low"]),
                                               float(speedup["high"]), bool(speedup["significant"]),
                                               int(speedup.get("rounds", 0))),
        latency_ns=(data.get("latency_ns") or {}).get("tuned"),
        default_latency_ns=(data.get("latency_ns") or {}).get("default"),
        budget=accuracy.get("budget", ""),
        accuracy=tuple(OutputAccuracy(**a) for a in accuracy.get("outputs", ())),
        environment=_environment(data["environment"]), perfkit_version=data.get("perfkit_version", ""),
        created=data.get("created", ""), caveats=tuple(data.get("caveats") or ()))


def target_of(data: dict[str, Any], subject: str) -> Target:
    """The Target a config describes; an unknown setting or value is an error here, not ignored there."""
    device = next((d for d, p in PROVIDERS.items() if p == data["provider"]), None)
    if device is None:
        raise PerfkitError(subject, f"provider {data['provider']} is not one perfkit runs",
                           f"use one of {', '.join(PROVIDERS.values())}")
    options = dict(data.get("session_options") or {})
    threads = options.pop("intra_op_num_threads", 0)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise PerfkitError(subject, f"intra_op_num_threads={threads!r} is not a thread count",
                           "give 0 (onnxruntime's default) or a number of threads")
    levels = {v: k for k, v in LEVEL_NAMES.items()}
    level = levels.get(options.pop("graph_optimization_level", "ORT_ENABLE_ALL"))
    if level not in OPT_LEVELS:
        raise PerfkitError(subject, "graph_optimization_level is not one of onnxruntime's levels",
                           f"use one of {', '.join(LEVEL_NAMES.values())}")
    pairs = [_checked(key, value, SESSION_OPTIONS, "session option", subject) for key, value in options.items()]
    config = [_checked(key, value, SESSION_CONFIG, "session config entry", subject)
              for key, value in (data.get("session_config") or {}).items()]
    modes = tuple(data.get("modes") or ())
    if unknown := [m for m in modes if m not in MODES]:
        raise PerfkitError(subject, f"mode {unknown[0]!r} is not one perfkit runs", f"modes: {', '.join(MODES)}")
    provider_options = tuple((str(k), str(v)) for k, v in (data.get("provider_options") or {}).items())
    known = PROVIDER_OPTIONS.get(device, ())
    if bad := [k for k, _ in provider_options if device == "cpu" or known and k not in known]:
        raise PerfkitError(subject, f"provider option {bad[0]!r} is not one of {data['provider']}'s",
                           f"its options: {', '.join(known) or 'none'}")
    return Target("ort", device, provider_options, threads or None, level, modes, tuple(pairs), tuple(config))


def _checked(key: str, value: Any, known: dict[str, Any], what: str, subject: str) -> tuple[str, str]:
    """(key, value as a target holds it) when perfkit applies that key with that value; else the error."""
    kind = known.get(key)
    text = str(int(value)) if isinstance(value, bool) else str(value)
    fits = kind is not None and (text.isdigit() and int(text) >= 1 if kind == "int" else text in kind)
    if not fits:
        raise PerfkitError(subject, f"{what} {key}={value!r} is not one perfkit applies",
                           f"{what}s it applies: {', '.join(known)}, with onnxruntime's values")
    return key, text


def _environment(data: dict[str, Any]) -> Environment:
    known = {f.name for f in dataclasses.fields(Environment)}
    values = {k: v for k, v in data.items() if k in known}
    values["cpu_flags"] = tuple(values.get("cpu_flags", ()))
    values["providers"] = tuple(values.get("providers", ()))
    return Environment(**values)


def differences(config: TunedConfig, model_digest: str | None, here: Environment, tuned_model_digest: str
                ) -> list[str]:
    """What differs from where the config was tuned, each said once: the model, the machine, the runtime."""
    out = []
    if tuned_model_digest != config.model_digest:
        out.append(f"the tuned model file changed since it was tuned (sha256 {config.model_digest[:12]} → "
                   f"{tuned_model_digest[:12]}): its figures may not hold")
    if model_digest is not None and model_digest != config.tuned_from_digest:
        out.append(f"this model is not the one the config was tuned from ({config.tuned_from}, sha256 "
                   f"{config.tuned_from_digest[:12]}; this one {model_digest[:12]})")
    there = config.environment
    for field, words in MACHINE_FIELDS:
        if getattr(there, field) != getattr(here, field):
            out.append(f"tuned on another machine: {words} {getattr(there, field)} there, {getattr(here, field)} "
                       "here — run perfkit tune on this machine")
    for package in RUNTIME_PACKAGES:
        if there.packages.get(package) != here.packages.get(package) and package in there.packages:
            out.append(f"tuned with {package} {there.packages.get(package)}, this is "
                       f"{here.packages.get(package) or 'not installed'}")
    return out


def snippet(config: TunedConfig) -> str:
    """A script that opens the tuned session with plain onnxruntime, feeds the inputs perfkit timed (saved
    beside it), and prints the median latency: the config applied as written, with nothing of perfkit."""
    t = config.target
    lines = [f"so.{k} = {_python(k, v)}" for k, v in session_options(t).items()]
    lines += [f"so.add_session_config_entry({k!r}, {v!r})" for k, v in t.session_config]
    provider = PROVIDERS.get(t.device, t.device)
    return f'''"""The session perfkit tune chose, opened with plain onnxruntime: python {SNIPPET_NAME}"""
import pathlib
import time

import numpy as np
import onnxruntime as ort

here = pathlib.Path(__file__).resolve().parent
so = ort.SessionOptions()
{chr(10).join(lines)}
session = ort.InferenceSession(str(here / {Path(config.model).name!r}), so,
                               providers=[({provider!r}, {dict(t.provider_options)!r})])

feed = dict(np.load(here / {FEED_NAME!r}))  # the inputs perfkit timed
for i in session.get_inputs():  # an fp16 file with fp16 inputs takes the same values as float16
    if i.type == "tensor(float16)" and feed[i.name].dtype == np.float32:
        feed[i.name] = feed[i.name].astype(np.float16)
{_call(t)}
for _ in range(20):  # warm-up: thread pools, caches, lazy allocations
    call()
times = []
end = time.perf_counter() + 3.0
while time.perf_counter() < end or len(times) < 30:
    t0 = time.perf_counter_ns()
    call()
    times.append(time.perf_counter_ns() - t0)
times.sort()
print(f"median {{times[len(times) // 2] / 1e6:.3f}} ms over {{len(times)}} calls "
      f"(perfkit measured {(config.latency_ns or 0) / 1e6:.3f} ms in its A/B)")
'''


def _call(t: Target) -> str:
    """The timed call as the row ran it: host arrays, or IOBinding with inputs and outputs on the device."""
    if "iobinding" not in t.modes:
        return "\ndef call():\n    session.run(None, feed)\n"
    device = "cuda" if t.device in ("cuda", "tensorrt") else t.device
    device_id = int(dict(t.provider_options).get("device_id", 0) or 0)
    return f"""
binding = session.io_binding()  # inputs copied to the device once; outputs stay there
on_device = {{name: ort.OrtValue.ortvalue_from_numpy(value, {device!r}, {device_id}) for name, value in feed.items()}}
for name, value in on_device.items():
    binding.bind_ortvalue_input(name, value)
for output in session.get_outputs():
    binding.bind_output(output.name, {device!r}, {device_id})


def call():
    session.run_with_iobinding(binding)
    binding.synchronize_outputs()
"""


def _python(key: str, value: Any) -> str:
    if key == "execution_mode":
        return f"ort.ExecutionMode.{value}"
    if key == "graph_optimization_level":
        return f"ort.GraphOptimizationLevel.{value}"
    return repr(value)


def check_folder(folder: Path) -> None:
    """-o must be new, empty, or a folder an earlier tune wrote holding nothing else: tune replaces it whole, so
    anything of the user's in it would be lost. Checked before the search, and again before writing."""
    if folder.exists() and not folder.is_dir():
        raise PerfkitError(str(folder), "exists and is not a folder", "give -o a folder for the tuned files")
    if not folder.is_dir():
        return
    others = sorted({p.name for p in folder.iterdir()} - written_names(folder))
    if others:
        raise PerfkitError(str(folder), f"holds files tune did not write ({', '.join(others[:3])}"
                           f"{', …' if len(others) > 3 else ''}), which replacing it would delete",
                           "give -o a new or empty folder")


def written_names(folder: Path) -> set[str]:
    """The names an earlier tune wrote in `folder`: its config, snippet and feed, and the model file the config
    names with the external data that model names; nothing when there is no readable config."""
    from perfkit.files.onnx_file import external_data_files, open_onnx

    try:
        data = json.loads((folder / CONFIG_NAME).read_text())
        model = folder / data["model"]["path"]
        _, proto = open_onnx(str(model))
        extra = {p.relative_to(folder.resolve()).parts[0] for p in external_data_files(proto, model)}
    except (OSError, ValueError, KeyError, TypeError, PerfkitError):
        return set()
    return {CONFIG_NAME, SNIPPET_NAME, FEED_NAME, model.name, *extra}


def write_folder(folder: Path, config: TunedConfig, feed: dict[str, Any]) -> Path:
    """The tuned folder, whole or not at all: the model file and its external data, perfkit-tuned.json, the
    snippet and the feed it times, staged beside the folder and then renamed into its place."""
    import shutil
    import tempfile

    from perfkit.files.onnx_file import external_data_files, open_onnx

    check_folder(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    source = Path(config.model).resolve()
    staged = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-new-"))
    try:
        _, proto = open_onnx(str(source))
        for data in external_data_files(proto, source):
            target = staged / data.relative_to(source.parent)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data, target)
        shutil.copyfile(source, staged / source.name)
        placed = replace(config, model=str(folder / source.name), tuned_from=str(Path(config.tuned_from).resolve()))
        (staged / CONFIG_NAME).write_text(to_json(placed, folder))
        (staged / SNIPPET_NAME).write_text(snippet(placed))
        save_feed(staged / FEED_NAME, feed)
        old = folder.parent / f".{folder.name}-old-{staged.name.rsplit('-', 1)[-1]}"
        if folder.exists():
            folder.rename(old)
        staged.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return folder / CONFIG_NAME


def save_feed(path: Path, feed: dict[str, Any]) -> None:
    """A .npz of the feed by input name, written entry by entry: np.savez takes names as keyword arguments, and
    an input called `file` collides with its own."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path, "w") as archive:
        for name, array in feed.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(array), allow_pickle=False)
