"""Transforms by name: the registry and the grammar of a variant (`ort-opt:all+int8-static:qdq,u8s8`).

A transform is a function `apply(src: Path, dst: Path, options: dict, ctx: BuildContext) -> notes` that
writes one model file from another; `perfkit.transforms.cache` runs the steps of a chain in spawned
workers, caches each result by content hash and parameters, and records the lineage.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perfkit.core.errors import PerfkitError
from perfkit.core.records import Outputs

if TYPE_CHECKING:
    from perfkit.analysis.accuracy import Budget

BOOL = ("true", "false")
MODEL_TYPES = ("auto", "bert", "bart", "gpt2", "gpt_neox", "vit", "clip", "swin", "t5", "unet", "vae", "phi",
               "conformer", "sam2", "mmdit")


@dataclass(frozen=True)
class Option:
    key: str
    choices: tuple[str, ...] = ()  # empty: any value
    default: str = ""
    repeat: bool = False  # values accumulate: fp16:block=Softmax,block=Resize
    # A value is taken as written (node names such as /layer1/layer1.0/conv1/Conv keep their case, '/', '.', ':'
    # and '='); only ',', '+', ';' and spaces, which separate options, steps and chains, cannot be in one.


@dataclass(frozen=True)
class TransformDef:
    """A registered transform: where its function lives and the options it takes."""

    function: str  # "module:function", imported only when the step runs
    options: tuple[Option, ...]
    machine_specific: bool = False  # results depend on this CPU: its flags enter the cache key


TRANSFORMS: dict[str, TransformDef] = {
    "ort-opt": TransformDef("perfkit.transforms.ort_opt:graph_optimize",
                    (Option("level", ("basic", "extended", "all"), "all"),), machine_specific=True),
    "fusion": TransformDef("perfkit.transforms.fusion:fuse",
                   (Option("model_type", MODEL_TYPES, "auto"), Option("num_heads", default="0"),
                    Option("hidden_size", default="0"))),
    "fp16": TransformDef("perfkit.transforms.fp16:convert",
                 (Option("engine", ("auto", "occ", "ort"), "auto"), Option("keep_io", BOOL, "true"),
                  Option("repair", BOOL, "true"), Option("block", repeat=True))),
    "int8-dynamic": TransformDef("perfkit.transforms.quantize:dynamic",
                         (Option("weights", ("qint8", "quint8"), "qint8"), Option("per_channel", BOOL, "false"),
                          Option("reduce_range", BOOL, "false"), Option("exclude", repeat=True))),
    "int8-static": TransformDef("perfkit.transforms.quantize:static",
                        (Option("format", ("qdq", "qoperator"), "qdq"), Option("types", ("u8s8", "s8s8"), "s8s8"),
                         Option("per_channel", BOOL, "false"), Option("reduce_range", BOOL, "false"),
                         Option("calibrate", ("minmax", "entropy", "percentile"), "minmax"),
                         Option("exclude", repeat=True))),
}


@dataclass(frozen=True)
class Step:
    """One transform with every option resolved; `given` keeps what the user wrote, for the label."""

    name: str
    options: tuple[tuple[str, str], ...]
    given: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.name + (":" + ",".join(self.given) if self.given else "")

    def values(self) -> dict[str, Any]:
        """Options as a dict; repeated options as tuples, flags as bools."""
        spec = {o.key: o for o in TRANSFORMS[self.name].options}
        out: dict[str, Any] = {}
        for key, value in self.options:
            if spec[key].repeat:
                out[key] = (*out.get(key, ()), value) if value else out.get(key, ())
            else:
                out[key] = value == "true" if spec[key].choices == BOOL else value
        return out


@dataclass(frozen=True)
class BuildContext:
    """What a transform may need beyond its input file; passed to spawned workers, so plain data only."""

    calibration: tuple[dict[str, Any], ...] = ()  # feeds for static quantization
    calibration_source: str = ""  # where they came from (digest or "synthetic, seed N"): part of the cache key
    check_feeds: tuple[dict[str, Any], ...] = ()  # for fp16's repair: the accuracy feeds
    reference: Outputs | None = None  # the base model's outputs on check_feeds
    budget: Budget | None = None
    source: str = ""  # the model path the user gave: fusion reads a Hugging Face config.json beside it


def split_chains(text: str) -> list[str]:
    """`ort-opt:all,int8-static:qdq,u8s8,fp16` -> three chains: after a comma, a transform's name (or
    `auto`) starts a new chain, anything else is one more option of the step before. `;` and spaces
    always separate chains."""
    register_plugins()
    chains: list[str] = []
    for group in text.replace(";", " ").split():
        for piece in group.split(","):
            head = piece.split("+")[0].split(":")[0]
            if head in TRANSFORMS or head == "auto" or not chains:
                chains.append(piece)
            else:
                chains[-1] += "," + piece
    return [c for c in chains if c]


def parse_chain(text: str) -> tuple[Step, ...]:
    """`ort-opt:all+int8-static:qdq,per-channel` -> steps; every mistake is named with the fix."""
    register_plugins()
    steps = []
    for part in (p.strip() for p in text.split("+")):
        name, _, opts = part.partition(":")
        if name not in TRANSFORMS:
            raise PerfkitError(f"--variants {text}", f"unknown transform '{name}'",
                               f"use {', '.join(TRANSFORMS)} joined with '+', or 'auto'")
        steps.append(parse_step(name, [o.strip() for o in opts.split(",") if o.strip()], text))
    return tuple(steps)


def parse_step(name: str, tokens: list[str], context: str) -> Step:
    spec = TRANSFORMS[name]
    by_key = {o.key: o for o in spec.options}
    chosen: dict[str, list[str]] = {}
    for token in tokens:
        key, eq, value = token.partition("=")
        key = key.replace("-", "_")
        if not eq:  # a bare word: a flag's name, or a value only one option has
            if key in by_key and by_key[key].choices == BOOL:
                value = "true"
            else:
                owners = [o.key for o in spec.options if token.lower() in o.choices and o.choices != BOOL]
                if len(owners) != 1:
                    raise PerfkitError(f"--variants {context}", f"'{token}' is not an option of {name}",
                                       f"{name} takes {_describe(spec)}")
                key, value = owners[0], token.lower()
        option = by_key.get(key)
        if option is None:
            raise PerfkitError(f"--variants {context}", f"{name} has no option '{key}'",
                               f"{name} takes {_describe(spec)}")
        if option.choices and value not in option.choices:
            raise PerfkitError(f"--variants {context}", f"{name}: {key}={value} is not one of "
                               f"{'/'.join(option.choices)}", f"{name} takes {_describe(spec)}")
        if key in chosen and not option.repeat:
            raise PerfkitError(f"--variants {context}", f"{name}: {key} given twice", "give each option once")
        chosen.setdefault(key, []).append(value)
    resolved = []
    for option in spec.options:
        for value in chosen.get(option.key, [option.default]):
            resolved.append((option.key, value))
    return Step(name, tuple(resolved), tuple(tokens))


def _describe(spec: TransformDef) -> str:
    parts = []
    for o in spec.options:
        if o.choices == BOOL:
            parts.append(o.key.replace("_", "-"))
        elif o.choices:
            parts.append("/".join(o.choices))
        else:
            parts.append(f"{o.key}=…")
    return ", ".join(parts)


def register_plugins(text: str | None = None) -> None:
    """Your own transforms, from `PERFKIT_TRANSFORMS="name=package.module:function;…"`: each takes
    (src, dst, options, ctx) like the built-in ones, and no options. Spawned workers inherit the variable,
    so a plugin runs isolated like any step."""
    import os

    text = os.environ.get("PERFKIT_TRANSFORMS", "") if text is None else text
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        name, eq, function = entry.partition("=")
        if not eq or ":" not in function or not name.strip():
            raise PerfkitError(f"PERFKIT_TRANSFORMS={text}", f"cannot read '{entry}'",
                               "write NAME=package.module:function, separated by ';'")
        TRANSFORMS.setdefault(name.strip(), TransformDef(function.strip(), ()))


def get_transform(name: str) -> Callable[..., list[str] | tuple[str, ...]]:
    register_plugins()
    if name not in TRANSFORMS:
        raise PerfkitError(name, "unknown transform", f"use one of {', '.join(TRANSFORMS)}")
    module, _, function = TRANSFORMS[name].function.partition(":")
    return getattr(importlib.import_module(module), function)
