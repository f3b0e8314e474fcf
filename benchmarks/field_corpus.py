"""A field corpus (issue 13): about a dozen real architectures with random weights, exported the way their users
export them, for `perfkit bench` to be tried on. Nothing is downloaded: every model is built from a config object
in code (the base model's real hidden size, heads and patch size; 2 layers or stages of 2 blocks, and a smaller
vocabulary for the text models, so each file stays under ~120 MB).

- transformers (torch): BERT, DistilBERT, RoBERTa, GPT-2, Llama, ViT, Swin, ConvNeXt with torch's default
  exporter (`torch.onnx.export(..., dynamo=True)`, weights in `model.onnx.data` beside the model); TorchScript
  (`torch.jit.trace(strict=False)` + `torch.jit.save`) of DistilBERT (input_ids only, returns a dict) and
  ConvNeXt (returns a tuple).
- Keras applications MobileNetV2 and EfficientNetB0 (`weights=None`) as `.keras` and through
  `tf2onnx.convert.from_keras` (opset 17) as `.onnx`.
- A ResNet-18 in plain torch (torchvision is not required) exported with dynamo, with a calibration `.npz` of
  64 smooth, ImageNet-normalised images and an inputs `.npz`.
- Text models get `inputs.npz` (batch 1, seq 128, int64 ids within the vocabulary, attention_mask ones); vision
  models a smooth normalised image.

Each model is built in its own subprocess (torch and TensorFlow apart, memory given back) into
`OUT/NAME/`, skipped when its `entry.json` is already there. `OUT/manifest.json` lists every model: file, how it
was exported, kind, and the perfkit args it needs.

Run: python benchmarks/field_corpus.py [--out /tmp/perfkit-corpus] [--only bert,vit] [--force]
     (or PERFKIT_CORPUS=/somewhere python benchmarks/field_corpus.py)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEFAULT_OUT = "/tmp/perfkit-corpus"
SEQ = 128
TEXT_VOCAB = 16384  # real vocabularies (30522, 50265, 50257) would put BERT-base's embeddings alone at 94 MB
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def corpus_dir(out: str | None = None) -> Path:
    return Path(out or os.environ.get("PERFKIT_CORPUS") or DEFAULT_OUT)


# ---- real-looking data -------------------------------------------------------------------------------------

def token_ids(vocab: int, seq: int = SEQ, batch: int = 1, first: int | None = None, last: int | None = None,
              seed: int = 0) -> np.ndarray:
    """Zipf-distributed ids above the special tokens (as text is: a few ids often, most rarely), int64."""
    rng = np.random.default_rng(seed)
    low = min(1000, vocab // 4)
    ids = low + (rng.zipf(1.2, (batch, seq)) - 1) % (vocab - low)
    if first is not None:
        ids[:, 0] = first
    if last is not None:
        ids[:, -1] = last
    return ids.astype(np.int64)


def smooth_images(n: int, size: int, seed: int = 0, layout: str = "nchw", normalise: str = "imagenet") -> np.ndarray:
    """Photograph-like images: low-frequency noise (1/f² spectrum) plus a random gradient per image, in [0, 1],
    then normalised as the model's users normalise (ImageNet mean/std, [-1, 1], or raw [0, 255])."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    falloff = 1.0 / (1.0 + (np.sqrt(fx**2 + fy**2) * size / 4) ** 2)
    out = np.empty((n, size, size, 3), np.float32)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    for i in range(n):
        noise = rng.normal(size=(3, size, size))
        img = np.fft.irfft2(np.fft.rfft2(noise) * falloff, s=(size, size))
        img = (img - img.min()) / (np.ptp(img) + 1e-9)
        angle = rng.uniform(0, 2 * np.pi)
        grad = np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]
        grad = (grad - grad.min()) / (np.ptp(grad) + 1e-9)
        tint = rng.uniform(0.2, 0.8, 3)
        mixed = 0.6 * img + 0.4 * grad[None] * tint[:, None, None]
        out[i] = np.clip(mixed, 0, 1).transpose(1, 2, 0)
    if normalise == "imagenet":
        out = (out - IMAGENET_MEAN) / IMAGENET_STD
    elif normalise == "tf":  # MobileNetV2's preprocess_input: [-1, 1]
        out = out * 2 - 1
    elif normalise == "raw":  # EfficientNet rescales inside the model: [0, 255]
        out = out * 255
    out = out.astype(np.float32)
    return out.transpose(0, 3, 1, 2).copy() if layout == "nchw" else out


# ---- torch helpers --------------------------------------------------------------------------------------------

def dynamo_export(model, kwargs: dict, path: Path, input_names, output_names, dynamic: dict | None) -> str:
    """As a user writes it with torch 2.13: dynamo=True is the default, the weights go to model.onnx.data."""
    import torch

    with torch.no_grad():
        torch.onnx.export(model, (), str(path), kwargs=kwargs, dynamo=True, input_names=list(input_names),
                          output_names=list(output_names), dynamic_shapes=dynamic)
    shapes = ("dynamic " + ", ".join(f"{k}:{[getattr(d, '__name__', str(d)) for d in v.values()]}"
                                  for k, v in dynamic.items())) if dynamic else "static"
    return f"torch.onnx.export(dynamo=True) [torch default], {shapes} shapes, external data"


def torch_dims(*names: str) -> dict:
    import torch

    return {n: torch.export.Dim(n, min=1, max=4096) if n != "batch" else torch.export.Dim(n, min=1, max=1024)
            for n in names}


def text_inputs(kind: str, vocab: int, names: list[str], first=None, last=None) -> dict[str, np.ndarray]:
    ids = token_ids(vocab, first=first, last=last)
    data = {"input_ids": ids}
    if "attention_mask" in names:
        data["attention_mask"] = np.ones_like(ids)
    if "token_type_ids" in names:
        data["token_type_ids"] = np.zeros_like(ids)
    return {k: data[k] for k in names}


def build_text(name: str, model, vocab: int, names: list[str], outputs: list[str], dynamic: bool, folder: Path,
               first=None, last=None, extra: str = "") -> dict:
    import torch

    model.eval()
    data = text_inputs("text", vocab, names, first, last)
    np.savez(folder / "inputs.npz", **data)
    kwargs = {k: torch.from_numpy(v) for k, v in data.items()}
    dyn = None
    if dynamic:
        batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("sequence", min=2, max=512)
        dyn = {k: {0: batch, 1: seq} for k in names}
    how = dynamo_export(model, kwargs, folder / "model.onnx", names, outputs, dyn)
    return {"file": "model.onnx", "exported": how + extra, "kind": "text", "native": False,
            "inputs": "inputs.npz", "args": []}


def bert(folder: Path) -> dict:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=TEXT_VOCAB, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                     num_hidden_layers=2, attn_implementation="eager")
    model = BertModel(cfg)
    return build_text("bert", model, TEXT_VOCAB, ["input_ids", "attention_mask", "token_type_ids"],
                      ["last_hidden_state", "pooler_output"], True, folder, first=101, last=102,
                      extra="; BertModel (bert-base: 768 hidden, 12 heads; 2 layers, vocab 16384), eager attention")


def distilbert(folder: Path) -> dict:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    cfg = DistilBertConfig(vocab_size=TEXT_VOCAB, dim=768, n_heads=12, hidden_dim=3072, n_layers=2, num_labels=2,
                           attn_implementation="eager")
    model = DistilBertForSequenceClassification(cfg)
    entry = build_text("distilbert", model, TEXT_VOCAB, ["input_ids", "attention_mask"], ["logits"], False, folder,
                       first=101, last=102,
                       extra="; DistilBertForSequenceClassification (2 labels; 768 hidden, 12 heads, 2 layers, "
                             "vocab 16384), eager attention, static 1x128")
    return entry


def roberta(folder: Path) -> dict:
    from transformers import RobertaConfig, RobertaForSequenceClassification

    cfg = RobertaConfig(vocab_size=TEXT_VOCAB, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                        num_hidden_layers=2, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                        bos_token_id=0, eos_token_id=2, num_labels=3,
                        id2label={0: "negative", 1: "neutral", 2: "positive"},
                        label2id={"negative": 0, "neutral": 1, "positive": 2})
    model = RobertaForSequenceClassification(cfg)  # sdpa attention (the default)
    return build_text("roberta", model, TEXT_VOCAB, ["input_ids", "attention_mask"], ["logits"], True, folder,
                      first=0, last=2,
                      extra="; RobertaForSequenceClassification (3 labels; roberta-base dims, 2 layers, vocab "
                            "16384), default (sdpa) attention")


def gpt2(folder: Path) -> dict:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=TEXT_VOCAB, n_embd=768, n_head=12, n_layer=2, n_positions=1024, use_cache=False,
                     attn_implementation="eager")
    model = GPT2LMHeadModel(cfg)
    return build_text("gpt2", model, TEXT_VOCAB, ["input_ids", "attention_mask"], ["logits"], True, folder,
                      extra="; GPT2LMHeadModel (gpt2 dims, 2 layers, vocab 16384, tied lm_head), use_cache=False, "
                            "eager attention")


def llama(folder: Path) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = 32000
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=512, intermediate_size=1376, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=2048, use_cache=False,
                      tie_word_embeddings=True, attn_implementation="eager")
    model = LlamaForCausalLM(cfg)
    return build_text("llama", model, vocab, ["input_ids", "attention_mask"], ["logits"], False, folder, first=1,
                      extra="; LlamaForCausalLM (512 hidden, 8 heads, 4 kv heads (GQA), 2 layers, vocab 32000, "
                            "tied), use_cache=False, eager attention, static 1x128")


def build_vision(model, folder: Path, size: int, outputs: list[str], dynamic: bool, extra: str) -> dict:
    import torch

    model.eval()
    data = {"pixel_values": smooth_images(1, size)}
    np.savez(folder / "inputs.npz", **data)
    dyn = {"pixel_values": {0: torch.export.Dim("batch", min=1, max=256)}} if dynamic else None
    kwargs = {"pixel_values": torch.from_numpy(data["pixel_values"])}
    try:
        how = dynamo_export(model, kwargs, folder / "model.onnx", ["pixel_values"], outputs, dyn)
    except Exception as exc:  # as a user does: the dynamic batch will not export, so export it static
        if not dyn:
            raise
        why = " ".join(str(exc).split("Exception summary")[-1].split())[:160]
        how = dynamo_export(model, kwargs, folder / "model.onnx", ["pixel_values"], outputs, None)
        how += f" (a dynamic batch failed to export: {why})"
    return {"file": "model.onnx", "exported": how + extra, "kind": "vision", "native": False,
            "inputs": "inputs.npz", "args": []}


def vit(folder: Path) -> dict:
    from transformers import ViTConfig, ViTForImageClassification

    cfg = ViTConfig(hidden_size=768, num_attention_heads=12, intermediate_size=3072, num_hidden_layers=2,
                    image_size=224, patch_size=16, num_labels=1000, attn_implementation="eager")
    return build_vision(ViTForImageClassification(cfg), folder, 224, ["logits"], True,
                        "; ViTForImageClassification (vit-base-patch16-224 dims, 2 layers, 1000 labels), eager")


def swin(folder: Path) -> dict:
    from transformers import SwinConfig, SwinForImageClassification

    cfg = SwinConfig(image_size=224, patch_size=4, embed_dim=96, depths=[2, 2, 2, 2], num_heads=[3, 6, 12, 24],
                     window_size=7, num_labels=1000)
    return build_vision(SwinForImageClassification(cfg), folder, 224, ["logits"], False,
                        "; SwinForImageClassification (swin-tiny dims, depths 2,2,2,2, 1000 labels), "
                        "static 1x3x224x224")


def convnext(folder: Path) -> dict:
    from transformers import ConvNextConfig, ConvNextForImageClassification

    cfg = ConvNextConfig(hidden_sizes=[96, 192, 384, 768], depths=[2, 2, 2, 2], num_labels=1000, image_size=224)
    return build_vision(ConvNextForImageClassification(cfg), folder, 224, ["logits"], True,
                        "; ConvNextForImageClassification (convnext-tiny dims, depths 2,2,2,2, 1000 labels)")


def distilbert_ts(folder: Path) -> dict:
    """TorchScript as users trace a Hugging Face model: input_ids only, strict=False because it returns a dict."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    cfg = DistilBertConfig(vocab_size=TEXT_VOCAB, dim=768, n_heads=12, hidden_dim=3072, n_layers=2, num_labels=2,
                           attn_implementation="eager")
    model = DistilBertForSequenceClassification(cfg).eval()
    ids = token_ids(TEXT_VOCAB, first=101, last=102)
    np.savez(folder / "inputs.npz", input_ids=ids)
    with torch.no_grad():
        traced = torch.jit.trace(model, (torch.from_numpy(ids),), strict=False)
    torch.jit.save(traced, str(folder / "model.pt"))
    return {"file": "model.pt", "kind": "text", "native": True, "inputs": "inputs.npz",
            "args": ["--shape", f"input_ids=1x{SEQ}"],
            "exported": "torch.jit.trace(model, (input_ids,), strict=False) + torch.jit.save; "
                        "DistilBertForSequenceClassification return_dict=True, so forward returns a dict "
                        "{'logits': ...}; takes input_ids (int64) only"}


def convnext_ts(folder: Path) -> dict:
    import torch
    from transformers import ConvNextConfig, ConvNextForImageClassification

    cfg = ConvNextConfig(hidden_sizes=[96, 192, 384, 768], depths=[2, 2, 2, 2], num_labels=1000, image_size=224,
                         torchscript=True)  # Hugging Face's way to trace: outputs become tuples
    model = ConvNextForImageClassification(cfg).eval()
    x = smooth_images(1, 224)
    np.savez(folder / "inputs.npz", pixel_values=x)
    with torch.no_grad():
        traced = torch.jit.trace(model, (torch.from_numpy(x),), strict=False)
    torch.jit.save(traced, str(folder / "model.pt"))
    return {"file": "model.pt", "kind": "vision", "native": True, "inputs": "inputs.npz",
            "args": ["--shape", "pixel_values=1x3x224x224"],
            "exported": "torch.jit.trace(model, (pixel_values,), strict=False) + torch.jit.save; "
                        "ConvNextForImageClassification(torchscript=True config), returns a tuple (logits,)"}


def resnet18_module():
    """torchvision's resnet18, written out in plain torch (torchvision is not installed here)."""
    from torch import nn

    class Basic(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet18(nn.Module):
        def __init__(self, classes: int = 1000):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            widths, cin, layers = [64, 128, 256, 512], 64, []
            for i, w in enumerate(widths):
                layers.append(nn.Sequential(Basic(cin, w, 1 if i == 0 else 2), Basic(w, w, 1)))
                cin = w
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet18()


def resnet18(folder: Path) -> dict:
    import torch

    torch.manual_seed(0)
    model = resnet18_module().eval()
    # Random BatchNorm statistics, as a trained model has (not the 0/1 of a fresh one).
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    x = smooth_images(1, 224, seed=1)
    np.savez(folder / "inputs.npz", input=x)
    np.savez(folder / "calibration.npz", input=smooth_images(64, 224, seed=2))
    dyn = {"x": {0: torch.export.Dim("batch", min=1, max=256)}}
    with torch.no_grad():
        torch.onnx.export(model, (torch.from_numpy(x),), str(folder / "model.onnx"), dynamo=True,
                          input_names=["input"], output_names=["logits"], dynamic_shapes=dyn)
    return {"file": "model.onnx", "kind": "vision", "native": False, "inputs": "inputs.npz",
            "calibration": "calibration.npz", "args": [],
            "exported": "torch.onnx.export(dynamo=True) [torch default], dynamic batch, external data; "
                        "torchvision-style ResNet-18 in plain torch, random BatchNorm statistics"}


# ---- Keras --------------------------------------------------------------------------------------------------

def keras_app(folder: Path, app: str, size: int, normalise: str) -> dict:
    import keras
    import tensorflow as tf

    builder = getattr(keras.applications, app)
    model = builder(weights=None, input_shape=(size, size, 3), classes=1000)
    model.save(folder / "model.keras")
    x = smooth_images(1, size, layout="nhwc", normalise=normalise)
    # The input layer's name ("input_layer"), which a reloaded model and perfkit use; `model.inputs[0].name` is
    # the symbolic tensor's ("keras_tensor"), which does not survive saving.
    input_name = model.inputs[0]._keras_history.operation.name
    np.savez(folder / "inputs.npz", **{input_name: x})
    entries = {"file": "model.keras", "kind": "vision", "native": True, "inputs": "inputs.npz", "args": [],
               "exported": f"keras.applications.{app}(weights=None, input_shape=({size},{size},3)) + "
                           f"model.save('.keras') (Keras {keras.__version__})"}
    import tf2onnx

    spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name=input_name),)
    onnx_note = ""
    try:
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(folder / "model.onnx"))
        onnx_note = "tf2onnx.convert.from_keras(model, input_signature=(None,H,W,3), opset=17)"
    except Exception as exc:  # tf2onnx 1.17 and Keras 3: users then go through a tf.function
        first = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]

        @tf.function(input_signature=spec)
        def serve(x):
            return model(x, training=False)

        tf2onnx.convert.from_function(serve, input_signature=spec, opset=17, output_path=str(folder / "model.onnx"))
        onnx_note = (f"tf2onnx.convert.from_function(tf.function(model), opset=17) because "
                     f"tf2onnx.convert.from_keras failed: {first}")
    np.savez(folder / "inputs_onnx.npz", **{_onnx_input(folder / "model.onnx"): x})
    entries["onnx_sibling"] = {"file": "model.onnx", "exported": onnx_note, "inputs": "inputs_onnx.npz"}
    return entries


def _onnx_input(path: Path) -> str:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.input[0].name


def mobilenetv2(folder: Path) -> dict:
    return keras_app(folder, "MobileNetV2", 224, "tf")


def efficientnetb0(folder: Path) -> dict:
    return keras_app(folder, "EfficientNetB0", 224, "raw")


BUILDERS: dict[str, Callable[[Path], dict]] = {
    "bert": bert, "distilbert": distilbert, "roberta": roberta, "gpt2": gpt2, "llama": llama,
    "vit": vit, "swin": swin, "convnext": convnext, "resnet18": resnet18,
    "distilbert_ts": distilbert_ts, "convnext_ts": convnext_ts,
    "mobilenetv2": mobilenetv2, "efficientnetb0": efficientnetb0,
}


# ---- driver -------------------------------------------------------------------------------------------------

def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def build_one(name: str, out: Path) -> None:
    """In this process: build NAME into OUT/NAME and write its entry.json (or error.json)."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "error.json").unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        entry = BUILDERS[name](folder)
    except Exception as exc:
        (folder / "error.json").write_text(json.dumps({"name": name, "error": f"{type(exc).__name__}: {exc}"[:2000],
                                                       "traceback": traceback.format_exc()[-6000:]}, indent=1))
        raise
    entry.update(name=name, build_s=round(time.perf_counter() - start, 1))
    (folder / "entry.json").write_text(json.dumps(entry, indent=1))


def build(out: str | Path | None = None, only: list[str] | None = None, force: bool = False,
          timeout: float = 900, log: Callable[[str], None] = print) -> dict:
    """Build what is missing (each model in its own subprocess) and write OUT/manifest.json; return it."""
    out = corpus_dir(str(out) if out else None)
    out.mkdir(parents=True, exist_ok=True)
    for name in only or list(BUILDERS):
        if (out / name / "entry.json").is_file() and not force:
            continue
        log(f"building {name} …")
        start = time.perf_counter()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        try:
            proc = subprocess.run([sys.executable, __file__, "--out", str(out), "--one", name], env=env,
                                  capture_output=True, text=True, timeout=timeout)
            ok = proc.returncode == 0
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] if not ok else []
        except subprocess.TimeoutExpired:
            ok, tail = False, [f"timed out after {timeout} s"]
        log(f"  {name}: {'ok' if ok else 'FAILED ' + ' '.join(tail)} ({time.perf_counter() - start:.0f} s)")
    return write_manifest(out)


def write_manifest(out: Path) -> dict:
    models, failed = [], []
    for name in BUILDERS:
        folder = out / name
        if (folder / "entry.json").is_file():
            entry = json.loads((folder / "entry.json").read_text())
            sibling = entry.pop("onnx_sibling", None)
            for e in [entry] + ([{**entry, **sibling, "name": name + "_onnx", "native": False,
                                   "exported": sibling["exported"]}] if sibling else []):
                e = dict(e)
                e["path"] = str(folder / e["file"])
                e["folder"] = str(folder)
                for key in ("inputs", "calibration"):
                    if e.get(key):
                        e[key] = str(folder / e[key])
                if e.get("calibration"):
                    e["args_variants"] = ["--calibration", e["calibration"]]
                e["size_bytes"] = _model_bytes(Path(e["path"]))
                models.append(e)
        elif (folder / "error.json").is_file():
            failed.append(json.loads((folder / "error.json").read_text()) | {"traceback": None})
    manifest = {"folder": str(out), "models": models, "failed_builds": failed}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _model_bytes(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help=f"corpus folder [{DEFAULT_OUT}, or $PERFKIT_CORPUS]")
    parser.add_argument("--only", help="comma-separated names: " + ",".join(BUILDERS))
    parser.add_argument("--force", action="store_true", help="rebuild models already built")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the subprocess that builds one model
    args = parser.parse_args()
    if args.one:
        build_one(args.one, corpus_dir(args.out))
        return
    only = args.only.split(",") if args.only else None
    manifest = build(args.out, only, args.force)
    for m in manifest["models"]:
        print(f"{m['name']:18} {m['size_bytes'] / 1e6:7.1f} MB  {m['path']}")
    for f in manifest["failed_builds"]:
        print(f"{f['name']:18} BUILD FAILED: {f['error'][:200]}")


if __name__ == "__main__":
    main()
