"""PyTorch: TorchScript archives, torch.export programs (.pt2), state dicts filled by a --factory, and whole
pickled modules (trusted only); run under torch.inference_mode on the feeds of the ONNX conversion."""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable
from typing import Any

from perfkit.backends import Closing
from perfkit.core.errors import PerfkitError, brief
from perfkit.core.model import NativeModel, Port
from perfkit.core.spec import InputShape, Target
from perfkit.files.trust import require_trust, user_code_importable

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")  # where training checkpoints keep the weights
IDS_NAME = re.compile(r"(?:.*_)?ids|token.*", re.IGNORECASE)  # input_ids, token_type_ids, tokens: an embedding's
SAFE_IDS = 2  # example ids 0 and 1 where no table is found: inside any table, a two-row segment table's too
# Ops an id tensor passes through unchanged in value on its way to the embedding it indexes.
KEEPS_VALUES = {"aten::to", "aten::view", "aten::reshape", "aten::contiguous", "aten::unsqueeze", "aten::squeeze",
                "aten::flatten", "aten::clone", "aten::slice", "aten::select", "aten::expand", "aten::detach"}


def missing() -> str | None:
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch"
    return None


def load(native: NativeModel) -> Any:
    import torch

    subject = native.source or native.path
    if native.format == "torchscript":
        try:
            return torch.jit.load(native.path, map_location="cpu").eval()
        except Exception as exc:
            raise PerfkitError(subject, f"not a loadable TorchScript archive ({brief(exc)})",
                               "save it again with torch.jit.save(torch.jit.script(model), path)") from None
    if native.format == "exported-program":
        try:
            return torch.export.load(native.path)
        except Exception as exc:
            raise PerfkitError(subject, f"not a loadable torch.export program ({brief(exc)})",
                               "save it again with torch.export.save(torch.export.export(model, args), path)"
                               ) from None
    return _load_saved(native, subject)


def _load_saved(native: NativeModel, subject: str) -> Any:
    """torch.save output: weights only unless trusted; a state dict needs the --factory that builds the module."""
    import pickle

    import torch

    try:
        obj = torch.load(native.path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        require_trust(native.path, native.trusted, "this PyTorch file holds more than weights: it", subject)
        user_code_importable()
        try:
            obj = torch.load(native.path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise PerfkitError(subject, f"torch.load failed even trusted ({brief(exc)})",
                               "load it where the model's classes are importable, or save a state dict") from None
    except Exception as exc:
        raise PerfkitError(subject, f"not a file torch.load reads ({brief(exc)})",
                           "save it with torch.save(model.state_dict(), path) or torch.jit.save") from None
    if isinstance(obj, torch.nn.Module):
        return obj.eval()
    if isinstance(obj, dict):
        weights = next((obj[k] for k in STATE_DICT_KEYS if isinstance(obj.get(k), dict)), obj)
        return _from_factory(native, weights, subject)
    raise PerfkitError(subject, f"holds a {type(obj).__name__}, not a module or a state dict",
                       "save the module with torch.jit.save, or its state_dict with torch.save")


def _from_factory(native: NativeModel, weights: dict, subject: str) -> Any:
    if not native.factory:
        raise PerfkitError(subject, f"a state dict ({len(weights)} tensors): weights without the module's code",
                           "pass --factory package.module:function, a function that returns the untrained module")
    module_name, _, attr = native.factory.partition(":")
    user_code_importable()
    try:
        make = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise PerfkitError(f"--factory {native.factory}", f"cannot import it ({brief(exc)})",
                           "give package.module:function, importable from here (PYTHONPATH)") from None
    model = make()
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise PerfkitError(subject, f"the state dict does not fit --factory {native.factory}: {brief(exc)}",
                           "give the factory of the architecture that was trained") from None
    return model.eval()


def input_ports(model: Any, native: NativeModel, shapes: tuple[InputShape, ...], sample: Any) -> tuple[Port, ...]:
    """From a torch.export program's own placeholders; else from --inputs data or --shape (a module does not
    record what it takes: an input without `:DTYPE` is int64 when named like token ids, else float32). The
    first dim is the batch."""
    import torch

    if isinstance(model, torch.export.ExportedProgram):
        ports = []
        for node in model.graph.nodes:
            if node.op == "placeholder" and node.name in _user_inputs(model):
                val = node.meta.get("val")
                dims = tuple(d if isinstance(d, int) else None for d in val.shape)  # as exported: may be static
                ports.append(Port(node.name, str(val.dtype).removeprefix("torch."), dims))
        return tuple(ports)
    if isinstance(sample, dict) and sample:
        return tuple(Port(k, str(v.dtype), (None, *v.shape[1:])) for k, v in sample.items())
    if shapes:
        return tuple(Port(s.name, s.dtype or guessed_dtype(s.name), (None, *s.dims[1:])) for s in shapes)
    raise PerfkitError(native.source or native.path, "a PyTorch module does not record the shape of its inputs",
                       "give it, e.g. --shape x=1x3x224x224 or --shape input_ids=1x128:int64 (one per input, "
                       "in the order forward takes them)")


def guessed_dtype(name: str) -> str:
    """A module's input without a stated type: token ids index an embedding, so int64; anything else float32."""
    return "int64" if IDS_NAME.fullmatch(name) else "float32"


def _user_inputs(program: Any) -> set[str]:
    return {s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"}


def index_limits(model: Any, ports: tuple[Port, ...]) -> dict[str, int]:
    """Rows of the embedding table each integer input indexes, where the model shows it: TorchScript by the
    aten::embedding its input feeds; a plain module by its smallest nn.Embedding (which fits whichever table
    the input indexes). Inputs not found here keep SAFE_IDS."""
    import torch

    wanted = [p for p in ports if p.dtype.startswith(("int", "uint"))]
    if not wanted:
        return {}
    if isinstance(model, torch.jit.ScriptModule):
        values = list(model.inlined_graph.inputs())[1:]  # the first is self; then forward's, in order
        found = {p.name: _table_rows(model, v) for p, v in zip(ports, values, strict=False)}
        return {name: rows for name, rows in found.items() if rows and name in {p.name for p in wanted}}
    rows = [m.num_embeddings for m in model.modules() if isinstance(m, torch.nn.Embedding)] \
        if isinstance(model, torch.nn.Module) else []
    return {p.name: min(rows) for p in wanted} if rows else {}


def _table_rows(model: Any, value: Any) -> int | None:
    """The fewest rows of the embedding tables `value` indexes, following it through ops that keep its values."""
    rows: list[int] = []
    todo, seen = [value], set()
    while todo:
        current = todo.pop()
        for use in current.uses():
            node = use.user
            if node.kind() == "aten::embedding" and use.offset == 1:
                weight = _attribute(model, node.inputsAt(0))
                if weight is not None and weight.dim() == 2:
                    rows.append(int(weight.shape[0]))
            elif node.kind() in KEEPS_VALUES and id(node) not in seen:
                seen.add(id(node))
                todo.extend(node.outputs())
    return min(rows) if rows else None


def _attribute(model: Any, value: Any) -> Any:
    """The module attribute a TorchScript value reads (a chain of prim::GetAttr from self), or None."""
    path = []
    node = value.node()
    while node.kind() == "prim::GetAttr":
        path.append(node.s("name"))
        node = node.input().node()
    if node.kind() != "prim::Param":
        return None
    for name in reversed(path):
        model = getattr(model, name, None)
    return model


def example_arrays(ports: tuple[Port, ...], batch: int, limits: dict[str, int] | None = None) -> list[Any]:
    """Seeded example inputs for the export: integers below their table's rows (`limits`), else in [0, SAFE_IDS)."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = []
    for p in ports:
        dims = p.shape or (None,)
        shape = (dims[0] if isinstance(dims[0], int) else batch, *(d if isinstance(d, int) else 1 for d in dims[1:]))
        if p.dtype.startswith(("int", "uint")):
            out.append(rng.integers(0, (limits or {}).get(p.name, SAFE_IDS), shape).astype(p.dtype))
        elif p.dtype == "bool":
            out.append(rng.integers(0, 2, shape).astype(bool))
        else:
            out.append(rng.random(shape, dtype=np.float32).astype(p.dtype))
    return out


def named_outputs(out: Any, path: str = "") -> list[tuple[str, Any]]:
    """A model's outputs leaf by leaf, named: a dict's or a ModelOutput's keys as they are (`logits`,
    `last_hidden_state`), nested keys and positions joined by dots; a lone tensor `output`; a tuple's
    `output_0`, `output_1`…. The export and the native session flatten alike, so names and order agree."""
    children = _children(out)
    if children is not None:
        return [pair for key, value in children for pair in named_outputs(value, _join(path, key))]
    if out is None:
        return []
    if not path:
        return [("output", out)]
    return [(f"output_{path}" if path[0].isdigit() else path, out)]


def _children(out: Any) -> list[tuple[str, Any]] | None:
    """A container's parts with their keys (a mapping's keys, else positions); None for a tensor or a value."""
    from collections.abc import Mapping

    import torch

    if isinstance(out, Mapping):
        return [(str(k), v) for k, v in out.items()]
    if isinstance(out, (tuple, list)):
        return [(str(i), v) for i, v in enumerate(out)]
    if out is None or isinstance(out, torch.Tensor):
        return None
    leaves = torch.utils._pytree.tree_leaves(out)  # another container torch flattens (a registered pytree node)
    return None if len(leaves) == 1 and leaves[0] is out else [(str(i), v) for i, v in enumerate(leaves)]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def is_flat(out: Any) -> bool:
    """A tensor or a tuple of tensors: what both ONNX exporters take as outputs without help."""
    import torch

    return isinstance(out, torch.Tensor) or isinstance(out, tuple) and all(isinstance(t, torch.Tensor) for t in out)


def jit_warmup_calls(model: Any) -> int:
    """Calls a TorchScript module takes before it runs its optimised graph: the profiling executor records
    `num_profiled_runs` calls, then optimises on the next; 0 for anything that does not JIT."""
    import torch

    if not isinstance(model, torch.jit.ScriptModule) or not torch._C._get_graph_executor_optimize():
        return 0
    return int(torch._C._jit_get_num_profiled_runs()) + 1  # type: ignore[attr-defined]  # not in torch's stubs


class TorchBackend:
    clock = staticmethod(time.perf_counter_ns)

    def unavailable(self, target: Target) -> str | None:
        if missing():
            return "torch is not installed — pip install 'perfkit[torch]'"
        import torch

        if target.device == "cuda" and not torch.cuda.is_available():
            return "torch sees no CUDA device here"
        if target.device not in ("cpu", "cuda"):
            return f"perfkit runs torch on cpu or cuda, not {target.device}"
        return None

    def open(self, native: NativeModel, target: Target) -> TorchSession:
        return TorchSession(load(native), native, target)


class TorchSession(Closing):
    def __init__(self, model: Any, native: NativeModel, target: Target) -> None:
        import torch

        self._torch = torch
        if target.threads is not None:
            torch.set_num_threads(target.threads)
        self._device = torch.device(target.device)
        call = model.module() if isinstance(model, torch.export.ExportedProgram) else model
        self._model = call.to(self._device) if hasattr(call, "to") else call
        self._native = native
        self._mode = torch.inference_mode()
        self._mode.__enter__()  # for the session's life: no autograd bookkeeping in any call
        self.output_names = native.outputs
        self.jit_warmup_calls = jit_warmup_calls(call)  # untimed calls before a JIT's figures mean anything
        self.providers = (f"torch:{self._device.type}",)
        self.settings = {"requested": f"torch:{self._device.type}", "torch": torch.__version__,
                         "intra_op_threads": str(torch.get_num_threads()), "mode": "inference_mode",
                         "format": native.format}
        self._sync = torch.cuda.synchronize if self._device.type == "cuda" else None

    def prepare(self, feed: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(self._torch.from_numpy(feed[p.name]).to(self._device) for p in self._native.inputs)

    def run(self, prepared: tuple[Any, ...]) -> list[Any]:
        out = self._model(*prepared)
        if self._sync:
            self._sync()
        return [t.detach().cpu().numpy() if hasattr(t, "detach") else t for _, t in named_outputs(out)]

    def bind(self, prepared: tuple[Any, ...]) -> Callable[[], Any]:
        model, sync = self._model, self._sync
        if sync is None:
            def call() -> Any:
                return model(*prepared)
        else:
            def call() -> Any:  # the clock stops when the device has finished, not when the launch returns
                out = model(*prepared)
                sync()
                return out
        return call

    def close(self) -> None:
        self._mode.__exit__(None, None, None)
        self._model = None

