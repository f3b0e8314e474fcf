"""Pickle-based files are programs: what one would import, read from its opcodes without running it, and
the gate that refuses to load it unless the user said they trust it (--trust or PERFKIT_TRUST=1).

The scan interprets the opcodes with inert values only: a global becomes a named placeholder, a call on
it another placeholder. Nothing is imported and nothing is called, so a hostile file cannot act here.
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from perfkit.errors import PerfkitError

# Imports that let a pickle do anything at load time: shell commands, files, code, other imports.
CODE_RUNNING = {
    "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "pty", "importlib", "runpy", "code",
    "codeop", "ctypes", "marshal", "pickle", "_pickle", "webbrowser", "commands", "multiprocessing", "signal",
    "asyncio", "pip", "setuptools", "platform", "tempfile", "glob", "pathlib", "io", "_io", "urllib", "http",
}
CODE_RUNNING_NAMES = {
    "builtins": {"eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "__import__", "globals",
                 "locals", "vars", "input", "breakpoint", "exit", "quit", "help", "memoryview"},
    "__builtin__": {"eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "__import__", "globals",
                    "file", "execfile", "input", "reload"},
    "types": {"CodeType", "FunctionType", "LambdaType", "ModuleType"},
    "operator": {"attrgetter", "methodcaller"},
    "functools": {"partial", "reduce"},
    "torch": {"load", "_load"},
    "numpy": {"load"},
    "numpy.lib.npyio": {"load"},
}
COMPRESSED = {b"\x78": "zlib", b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"\x5d\x00\x00": "lzma"}
MAX_DECOMPRESSED = 4 << 30  # a compressed joblib over this is not scanned to its end; said so


@dataclass
class PickleScan:
    """What a pickle-based file would import, in first-seen order, and anything the scan could not read."""

    imports: list[str] = field(default_factory=list)
    computed_imports: int = 0  # STACK_GLOBALs whose names are not plain strings: decided at load time
    stopped: str = ""  # why the scan ended before the end of the file, if it did

    def dangerous(self) -> list[str]:
        out = [g for g in self.imports if is_code_running(g)]
        if self.computed_imports:
            out.append(f"{self.computed_imports} import(s) computed at load time")
        return out

    def summary(self, limit: int = 8) -> str:
        """`it would import sklearn.pipeline.Pipeline, … (+3 more); of which can run any code: posix.system`."""
        shown = ", ".join(self.imports[:limit]) + (f" (+{len(self.imports) - limit} more)"
                                                   if len(self.imports) > limit else "")
        text = f"it would import {shown or 'nothing'}"
        if danger := self.dangerous():
            text += f"; of which can run any code: {', '.join(danger)}"
        if self.stopped:
            text += f" (scan incomplete: {self.stopped})"
        return text


def is_code_running(name: str) -> bool:
    module, _, attr = name.rpartition(".")
    top = module.split(".")[0]
    return top in CODE_RUNNING or attr in CODE_RUNNING_NAMES.get(module, ())


def trusted(flag: bool) -> bool:
    return flag or os.environ.get("PERFKIT_TRUST") == "1"


def require_trust(path: str, flag: bool, what: str, subject: str | None = None) -> None:
    """Refuse a pickle-based file unless trusted, naming the globals it would import; the error names
    `subject` (what the user gave, e.g. an MLflow folder) or the file."""
    if trusted(flag):
        return
    scan = scan_file(Path(path))
    raise PerfkitError(subject or path, f"{what} is a pickle, and loading a pickle runs code; {scan.summary()}",
                       "pass --trust (or set PERFKIT_TRUST=1) only if you trust where the file came from")


def scan_file(path: Path) -> PickleScan:
    """Scan a pickle, a (compressed) joblib file, a legacy torch.save file or the pickles in a zip archive."""
    if zipfile.is_zipfile(path):
        scan = PickleScan()
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith(".pkl"):
                    _scan_stream(io.BytesIO(z.read(name)), scan)
        return scan
    with path.open("rb") as f:
        head = f.read(6)
    for magic, kind in COMPRESSED.items():
        if head.startswith(magic):
            return scan_bytes(_decompress(path, kind))
    return scan_bytes(path.read_bytes())


def scan_bytes(data: bytes) -> PickleScan:
    scan = PickleScan()
    _scan_stream(io.BytesIO(data), scan)
    return scan


def _decompress(path: Path, kind: str) -> bytes:
    import bz2
    import gzip
    import lzma
    import zlib

    opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open, "lzma": lzma.open}.get(kind)
    if opener is None:  # joblib's zlib files are one raw zlib stream
        d = zlib.decompressobj()
        return d.decompress(path.read_bytes(), MAX_DECOMPRESSED)
    with opener(path, "rb") as f:
        return f.read(MAX_DECOMPRESSED)


def _scan_stream(stream: io.BytesIO, scan: PickleScan) -> None:
    """One pickle after another until the data ends (legacy torch files hold several)."""
    total = len(stream.getbuffer())
    while stream.tell() < total:
        start = stream.tell()
        try:
            _scan_one(stream, scan)
        except (ValueError, EOFError, KeyError, IndexError, TypeError) as exc:
            if start == 0 or not scan.imports:
                scan.stopped = f"not a readable pickle at byte {stream.tell()}: {exc}"
            # After the first pickle, what follows may be raw tensor data (legacy torch.save): not code.
            return


class _Global:
    """A placeholder for an imported name; calling it (REDUCE) gives another placeholder of that name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = None


class _Obj:
    def __init__(self, cls: _Global | None, args: object = None) -> None:
        self.cls, self.args, self.state = cls, args, None


_MARK = object()


def _scan_one(stream: io.BytesIO, scan: PickleScan) -> None:
    """Interpret one pickle with inert values; stop at its STOP. joblib's array data, written raw right
    after each NumpyArrayWrapper's BUILD, is skipped by the wrapper's shape and dtype."""
    stack: list[object] = []
    memo: dict[int, object] = {}

    def pop_mark() -> list[object]:
        items = []
        while (item := stack.pop()) is not _MARK:
            items.append(item)
        return items[::-1]

    def add_import(name: str) -> _Global:
        if name not in scan.imports:
            scan.imports.append(name)
        return _Global(name)

    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            return
        if name == "MARK":
            stack.append(_MARK)
        elif name in ("GLOBAL", "INST"):
            module, _, attr = arg.partition(" ")
            g = add_import(f"{module}.{attr}")
            stack.append(_Obj(g, pop_mark()) if name == "INST" else g)
        elif name == "STACK_GLOBAL":
            attr, module = stack.pop(), stack.pop()
            if isinstance(module, str) and isinstance(attr, str):
                stack.append(add_import(f"{module}.{attr}"))
            else:
                scan.computed_imports += 1
                stack.append(_Global("?"))
        elif name in ("REDUCE", "NEWOBJ"):
            args = stack.pop()
            cls = stack.pop()
            stack.append(_Obj(cls if isinstance(cls, _Global) else None, args))
        elif name == "NEWOBJ_EX":
            stack.pop()
            args = stack.pop()
            cls = stack.pop()
            stack.append(_Obj(cls if isinstance(cls, _Global) else None, args))
        elif name == "OBJ":
            items = pop_mark()
            stack.append(_Obj(items[0] if items and isinstance(items[0], _Global) else None, items[1:]))
        elif name == "BUILD":
            state = stack.pop()
            target = stack[-1]
            if isinstance(target, _Obj):
                target.state = state
                if target.cls is not None and target.cls.name == "joblib.numpy_pickle.NumpyArrayWrapper":
                    _skip_joblib_array(stream, state, scan)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            pop_mark()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in ("TUPLE", "LIST"):
            items = pop_mark()
            stack.append(tuple(items) if name == "TUPLE" else items)
        elif name == "DICT":
            items = pop_mark()
            stack.append(dict(_pairs(items)))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = stack[-n:]
            del stack[-n:]
            stack.append(tuple(items))
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("EMPTY_LIST", "EMPTY_SET"):
            stack.append([])
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name in ("APPEND", "APPENDS", "ADDITEMS"):
            items = [stack.pop()] if name == "APPEND" else pop_mark()
            if isinstance(stack[-1], list):
                stack[-1].extend(items)
        elif name in ("SETITEM", "SETITEMS"):
            items = [stack.pop(-2), stack.pop()] if name == "SETITEM" else pop_mark()
            if isinstance(stack[-1], dict):
                stack[-1].update(_pairs(items))
        elif name == "FROZENSET":
            stack.append(pop_mark())
        elif name in ("PERSID", "BINPERSID"):
            if name == "BINPERSID":
                stack.pop()
            stack.append(_Obj(None))  # torch storages: data, not code
        elif name in ("EXT1", "EXT2", "EXT4"):
            scan.computed_imports += 1  # the copyreg extension registry names the import at load time
            stack.append(_Global("?"))
        elif name in ("NEXT_BUFFER", "READONLY_BUFFER"):
            if name == "NEXT_BUFFER":
                stack.append(b"")
        elif name in ("NEWTRUE", "NEWFALSE", "NONE"):
            stack.append({"NEWTRUE": True, "NEWFALSE": False, "NONE": None}[name])
        else:  # every opcode that pushes its argument: ints, floats, strings, bytes
            stack.append(arg)
    raise EOFError("the pickle ends without STOP")


def _pairs(items: list[object]) -> list[tuple[object, object]]:
    return [(k, v) for k, v in zip(items[::2], items[1::2], strict=False) if _hashable(k)]


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _skip_joblib_array(stream: io.BytesIO, state: object, scan: PickleScan) -> None:
    """Step over the array bytes joblib writes after a wrapper; an object array is a nested pickle."""
    import numpy as np

    if not isinstance(state, dict) or not isinstance(state.get("dtype"), _Obj):
        raise ValueError("a joblib array wrapper without shape and dtype")
    dtype_args = state["dtype"].args
    code = dtype_args[0] if isinstance(dtype_args, tuple) and dtype_args else None
    if code == "O8" or code == "O":
        _scan_one(stream, scan)
        return
    dtype_state = state["dtype"].state
    itemsize = np.dtype(code).itemsize
    if isinstance(dtype_state, tuple) and len(dtype_state) > 5 and isinstance(dtype_state[5], int) \
            and dtype_state[5] > 0:
        itemsize = dtype_state[5]  # flexible types (U, S, V) carry their element size in the state
    count = 1
    for dim in state.get("shape") or ():
        count *= int(dim)
    if state.get("numpy_array_alignment_bytes") is not None:
        padding = stream.read(1)
        stream.seek(int.from_bytes(padding, "little"), io.SEEK_CUR)
    stream.seek(count * itemsize, io.SEEK_CUR)
