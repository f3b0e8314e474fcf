"""Hugging Face `save_pretrained` folders (config.json beside model.safetensors): the task from config.json's
architectures (or --task), the model built by transformers' Auto class for it, offline, and run under
torch.inference_mode through a wrapper that takes the inputs in order and returns the task's outputs — the
same wrapper the ONNX export traces, so the native row and the conversion agree by construction."""

from __future__ import annotations

import inspect
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfkit.backends.torch import TorchSession
from perfkit.core.errors import PerfkitError, brief
from perfkit.core.model import NativeModel, Port
from perfkit.core.spec import InputShape, Target
from perfkit.files.trust import trusted


@dataclass(frozen=True)
class Task:
    name: str  # the pipeline task name users know: text-classification, feature-extraction, …
    auto_class: str  # transformers' Auto class that builds the model for it
    outputs: tuple[str, ...]  # the fields of its ModelOutput that the export keeps, in order
    per_token: bool = True  # its outputs have a sequence axis (second), as its token inputs do


TASKS = {t.name: t for t in (
    Task("feature-extraction", "AutoModel", ("last_hidden_state",)),
    Task("text-classification", "AutoModelForSequenceClassification", ("logits",), per_token=False),
    Task("token-classification", "AutoModelForTokenClassification", ("logits",)),
    Task("question-answering", "AutoModelForQuestionAnswering", ("start_logits", "end_logits")),
    Task("fill-mask", "AutoModelForMaskedLM", ("logits",)),
    Task("text-generation", "AutoModelForCausalLM", ("logits",)),
    Task("image-classification", "AutoModelForImageClassification", ("logits",), per_token=False),
)}
# The ending of an architecture's class name -> its task (BertForSequenceClassification, GPT2LMHeadModel, …).
ARCHITECTURE_TASKS = (("ForSequenceClassification", "text-classification"),
                      ("ForTokenClassification", "token-classification"),
                      ("ForQuestionAnswering", "question-answering"), ("ForMaskedLM", "fill-mask"),
                      ("ForCausalLM", "text-generation"), ("LMHeadModel", "text-generation"),
                      ("ForImageClassification", "image-classification"), ("Model", "feature-extraction"))
GENERATIVE_PAIRS = ("ForConditionalGeneration", "ForSeq2SeqLM", "EncoderDecoderModel", "ForSpeechSeq2Seq")
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # in the order optimum's exports take them
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def missing() -> str | None:
    from importlib.util import find_spec

    for module in ("torch", "transformers"):
        if find_spec(module) is None:
            return module
    return None


def read_config(folder: str, subject: str) -> dict[str, Any]:
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PerfkitError(subject, f"its config.json is not readable JSON ({brief(exc, 120)})",
                           "save the model again with model.save_pretrained(folder)") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise PerfkitError(subject, "its config.json has no model_type (not a transformers config)",
                           "save the model again with model.save_pretrained(folder)")
    return config


def task_of(config: dict[str, Any], given: str | None, subject: str) -> Task:
    """--task, else the task config.json's first architecture is made for."""
    if given:
        if given not in TASKS:
            raise PerfkitError(f"--task {given}", "not a task perfkit exports",
                               f"use one of: {', '.join(TASKS)}")
        return TASKS[given]
    architectures = config.get("architectures") or []
    if not architectures:
        raise PerfkitError(subject, "its config.json names no architectures, so the task is unknown",
                           f"give it with --task ({', '.join(TASKS)})")
    name = str(architectures[0])
    if name.endswith(GENERATIVE_PAIRS):
        raise PerfkitError(subject, f"{name} is an encoder-decoder model, exported as separate encoder and "
                           "decoder graphs run by a generation loop",
                           "export it with optimum-cli export onnx --model FOLDER out/ and bench out/encoder_model"
                           ".onnx and out/decoder_model.onnx, or give --task for its encoder alone")
    for ending, task in ARCHITECTURE_TASKS:
        if name.endswith(ending):
            return TASKS[task]
    raise PerfkitError(subject, f"no task perfkit knows is made by the architecture {name}",
                       f"give it with --task ({', '.join(TASKS)})")


def weights_file(folder: str, subject: str) -> str:
    found = [f for f in WEIGHT_FILES if (Path(folder) / f).is_file()]
    if not found:
        raise PerfkitError(subject, "a config.json without weights (no model.safetensors or pytorch_model.bin)",
                           "save the model with model.save_pretrained(folder), which writes both")
    return found[0]


def load(native: NativeModel, attention: str | None = None) -> Any:
    """The model for its task, wrapped to take the inputs in order and give the task's outputs as a tuple.
    Offline; no code from the folder runs unless trusted (a custom architecture's modeling file), and pickled
    weights (pytorch_model.bin) load through torch's weights-only unpickler as transformers does."""
    import torch  # noqa: F401  (transformers needs it for the model)

    subject = native.source or native.path
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a folder is all perfkit reads: no hub, ever
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    config = read_config(native.path, subject)
    task = task_of(config, native.hints.task, subject)
    weights_file(native.path, subject)
    custom = "auto_map" in config
    if custom and not trusted(native.trusted):
        raise PerfkitError(subject, "its config.json maps to Python code in the folder (auto_map: a custom "
                           "architecture), which runs when the model is built",
                           "pass --trust (or PERFKIT_TRUST=1) only if you trust where the folder came from")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars are not perfkit's output
    auto = getattr(transformers, task.auto_class)
    try:
        model = auto.from_pretrained(native.path, local_files_only=True, trust_remote_code=custom,
                                     **({"attn_implementation": attention} if attention else {}))
    except Exception as exc:
        raise PerfkitError(subject, f"transformers could not build it for {task.name} ({brief(exc, 200)})",
                           "give the task it was saved for with --task, or save it again with save_pretrained"
                           ) from None
    # after the export, its inputs: optimum's may add some (GPT-2's position_ids), fed by name
    names = tuple(p.name for p in native.inputs) or input_names(model, config, task)
    return wrap(model.eval(), task, names)


def input_names(model: Any, config: dict[str, Any], task: Task) -> tuple[str, ...]:
    """What the export takes: pixel_values for a vision model; else input_ids and attention_mask, with
    token_type_ids where the model has a segment table of more than one row (BERT, not RoBERTa or DistilBERT)."""
    params = inspect.signature(model.forward).parameters
    if "pixel_values" in params and "input_ids" not in params:
        return ("pixel_values",)
    names = [n for n in TEXT_INPUTS if n in params]
    if "token_type_ids" in names and int(config.get("type_vocab_size") or 0) < 2:
        names.remove("token_type_ids")
    if "input_ids" not in names:
        raise PerfkitError(model.__class__.__name__, "takes neither input_ids nor pixel_values",
                           "export it yourself with torch.onnx.export and bench the .onnx")
    return tuple(names)


def wrap(model: Any, task: Task, names: tuple[str, ...]) -> Any:
    import torch

    extra = {"use_cache": False} if task.name == "text-generation" else {}  # no past_key_values to carry

    class TaskOutputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.input_names = names
            self.task = task

        def forward(self, *args):
            out = self.model(**dict(zip(names, args, strict=True)), return_dict=True, **extra)
            return tuple(out[k] for k in task.outputs)

    return TaskOutputs().eval()


def input_ports(wrapped: Any, native: NativeModel, shapes: tuple[InputShape, ...]) -> tuple[Port, ...]:
    """int64 [batch, sequence] token inputs, or float32 pixel_values [batch, channels, side, side] from the
    config; --shape overrides the example dims."""
    config = wrapped.model.config
    given = {s.name: s.dims for s in shapes}
    if wrapped.input_names == ("pixel_values",):
        side = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
        dims = given.get("pixel_values") or (1, int(getattr(config, "num_channels", 3)), int(side), int(side))
        return (Port("pixel_values", "float32", (None, *dims[1:])),)
    return tuple(Port(n, "int64", (None, "sequence")) for n in wrapped.input_names)


class HfBackend:
    clock = staticmethod(time.perf_counter_ns)

    def unavailable(self, target: Target) -> str | None:
        if missing():
            return f"{missing()} is not installed — pip install 'perfkit[hf]'"
        import torch

        if target.device == "cuda" and not torch.cuda.is_available():
            return "torch sees no CUDA device here"
        if target.device not in ("cpu", "cuda"):
            return f"perfkit runs transformers on cpu or cuda, not {target.device}"
        return None

    def open(self, native: NativeModel, target: Target) -> TorchSession:
        wrapped = load(native)
        session = TorchSession(wrapped, native, target)
        session.settings.update(task=wrapped.task.name, transformers=_version("transformers"))
        return session


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
