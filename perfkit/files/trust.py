"""Pickle-based files are programs: what one would import, read from its opcodes without running it, and
the gate that refuses to load it unless the user said they trust it (--trust or PERFKIT_TRUST=1).

The scan interprets the opcodes with inert values only: a global becomes a named placeholder, a call on
it another placeholder. Nothing is imported and nothing is called, so a hostile file cannot act here.
"""

from __future__ import annotations

import io
import os
import pickletools
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfkit.core.errors import PerfkitError

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

    openers: dict[str, Callable[..., Any]] = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open, "lzma": lzma.open}
    opener = openers.get(kind)
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
    """Interpret one pickle with inert values; stop at its STOP."""
    _Interpreter(stream, scan).run()


class _Interpreter:
    """The pickle machine with inert values: a global becomes a named placeholder, a call on it another
    placeholder, containers stay containers. joblib's array data, written raw right after each
    NumpyArrayWrapper's BUILD, is skipped by the wrapper's shape and dtype."""

    def __init__(self, stream: io.BytesIO, scan: PickleScan) -> None:
        self.stream, self.scan = stream, scan
        self.stack: list[Any] = []
        self.memo: dict[int, object] = {}

    def run(self) -> None:
        for op, arg, _pos in pickletools.genops(self.stream):
            if op.name == "STOP":
                return
            handler = _HANDLERS.get(op.name)
            if handler is None:  # every opcode that pushes its argument: ints, floats, strings, bytes
                self.stack.append(arg)
            else:
                handler(self, arg)
        raise EOFError("the pickle ends without STOP")

    def pop_mark(self) -> list[Any]:
        items = []
        while (item := self.stack.pop()) is not _MARK:
            items.append(item)
        return items[::-1]

    def add_import(self, name: str) -> _Global:
        if name not in self.scan.imports:
            self.scan.imports.append(name)
        return _Global(name)

    def computed_import(self) -> None:
        """An import whose name is decided at load time (STACK_GLOBAL of non-strings, the copyreg registry)."""
        self.scan.computed_imports += 1
        self.stack.append(_Global("?"))

    def global_(self, arg: str, inst: bool) -> None:
        module, _, attr = arg.partition(" ")
        g = self.add_import(f"{module}.{attr}")
        self.stack.append(_Obj(g, self.pop_mark()) if inst else g)

    def stack_global(self) -> None:
        attr, module = self.stack.pop(), self.stack.pop()
        if isinstance(module, str) and isinstance(attr, str):
            self.stack.append(self.add_import(f"{module}.{attr}"))
        else:
            self.computed_import()

    def call(self, with_kwargs: bool) -> None:
        """REDUCE, NEWOBJ and NEWOBJ_EX: a placeholder object of the class called."""
        if with_kwargs:
            self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.stack.append(_Obj(cls if isinstance(cls, _Global) else None, args))

    def obj(self) -> None:
        items = self.pop_mark()
        self.stack.append(_Obj(items[0] if items and isinstance(items[0], _Global) else None, items[1:]))

    def build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, _Obj):
            target.state = state
            if target.cls is not None and target.cls.name == "joblib.numpy_pickle.NumpyArrayWrapper":
                _skip_joblib_array(self.stream, state, self.scan)

    def tuple_of(self, n: int) -> None:
        items = self.stack[-n:]
        del self.stack[-n:]
        self.stack.append(tuple(items))

    def extend(self, one: bool) -> None:
        items = [self.stack.pop()] if one else self.pop_mark()
        if isinstance(self.stack[-1], list):
            self.stack[-1].extend(items)

    def set_items(self, one: bool) -> None:
        items = [self.stack.pop(-2), self.stack.pop()] if one else self.pop_mark()
        if isinstance(self.stack[-1], dict):
            self.stack[-1].update(_pairs(items))

    def persistent_id(self, binary: bool) -> None:
        if binary:
            self.stack.pop()
        self.stack.append(_Obj(None))  # torch storages: data, not code


def _push(value: Callable[[], object]) -> Callable[[_Interpreter, Any], object]:
    return lambda m, _arg: m.stack.append(value())


# Opcode name -> what it does to the inert machine; an opcode not listed pushes its argument.
_HANDLERS: dict[str, Callable[[_Interpreter, Any], object]] = {
    "PROTO": lambda m, arg: None, "FRAME": lambda m, arg: None,
    "MARK": _push(lambda: _MARK),
    "GLOBAL": lambda m, arg: m.global_(arg, inst=False), "INST": lambda m, arg: m.global_(arg, inst=True),
    "STACK_GLOBAL": lambda m, arg: m.stack_global(),
    "REDUCE": lambda m, arg: m.call(with_kwargs=False), "NEWOBJ": lambda m, arg: m.call(with_kwargs=False),
    "NEWOBJ_EX": lambda m, arg: m.call(with_kwargs=True),
    "OBJ": lambda m, arg: m.obj(),
    "BUILD": lambda m, arg: m.build(),
    "PUT": lambda m, arg: m.memo.__setitem__(arg, m.stack[-1]),
    "BINPUT": lambda m, arg: m.memo.__setitem__(arg, m.stack[-1]),
    "LONG_BINPUT": lambda m, arg: m.memo.__setitem__(arg, m.stack[-1]),
    "MEMOIZE": lambda m, arg: m.memo.__setitem__(len(m.memo), m.stack[-1]),
    "GET": lambda m, arg: m.stack.append(m.memo[arg]), "BINGET": lambda m, arg: m.stack.append(m.memo[arg]),
    "LONG_BINGET": lambda m, arg: m.stack.append(m.memo[arg]),
    "POP": lambda m, arg: m.stack.pop(), "POP_MARK": lambda m, arg: m.pop_mark(),
    "DUP": lambda m, arg: m.stack.append(m.stack[-1]),
    "TUPLE": lambda m, arg: m.stack.append(tuple(m.pop_mark())), "LIST": lambda m, arg: m.stack.append(m.pop_mark()),
    "DICT": lambda m, arg: m.stack.append(dict(_pairs(m.pop_mark()))),
    "TUPLE1": lambda m, arg: m.tuple_of(1), "TUPLE2": lambda m, arg: m.tuple_of(2),
    "TUPLE3": lambda m, arg: m.tuple_of(3),
    "EMPTY_TUPLE": _push(tuple), "EMPTY_LIST": _push(list), "EMPTY_SET": _push(list), "EMPTY_DICT": _push(dict),
    "APPEND": lambda m, arg: m.extend(one=True), "APPENDS": lambda m, arg: m.extend(one=False),
    "ADDITEMS": lambda m, arg: m.extend(one=False),
    "SETITEM": lambda m, arg: m.set_items(one=True), "SETITEMS": lambda m, arg: m.set_items(one=False),
    "FROZENSET": lambda m, arg: m.stack.append(m.pop_mark()),
    "PERSID": lambda m, arg: m.persistent_id(binary=False), "BINPERSID": lambda m, arg: m.persistent_id(binary=True),
    "EXT1": lambda m, arg: m.computed_import(), "EXT2": lambda m, arg: m.computed_import(),
    "EXT4": lambda m, arg: m.computed_import(),
    "NEXT_BUFFER": _push(bytes), "READONLY_BUFFER": lambda m, arg: None,
    "NEWTRUE": _push(lambda: True), "NEWFALSE": _push(lambda: False), "NONE": _push(lambda: None),
}


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


def user_code_importable() -> None:
    """A trusted pickle or a --factory names the user's own classes; like `python -m`, let them come from the
    folder the user works in (the console script starts with only its own bin folder on sys.path)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
