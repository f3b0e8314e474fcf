"""What a safetensors file holds, from its JSON header alone (the tensors are never read): names, element
types, parameter counts, and the metadata its writer left."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from perfkit.core.errors import PerfkitError

HEADER_LIMIT = 100 << 20  # the format's own cap on the header's size


@dataclass(frozen=True)
class Weights:
    tensors: int
    parameters: int
    dtypes: tuple[str, ...]  # F32, F16, BF16, I64, … as the file names them
    metadata: dict[str, str]


def read_header(path: Path) -> dict:
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if not 2 <= size < HEADER_LIMIT:
            raise PerfkitError(str(path), "not a safetensors file (its header length is out of range)",
                               "save the weights again with safetensors.torch.save_file or save_pretrained")
        raw = f.read(size)
    if len(raw) < size:
        raise PerfkitError(str(path), f"a truncated safetensors file: its header needs {size:,} bytes, "
                           f"the file has {len(raw):,} after the length", "copy or download the file again")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PerfkitError(str(path), "a damaged safetensors file (its header is not JSON)",
                           "copy or download the file again") from None
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
    if ends and path.stat().st_size < 8 + size + max(ends):
        raise PerfkitError(str(path), f"a truncated safetensors file: its tensors need {8 + size + max(ends):,} "
                           f"bytes, the file has {path.stat().st_size:,}", "copy or download the file again")
    return dict(header)


def summarize(paths: list[Path]) -> Weights:
    tensors, params = 0, 0
    dtypes: set[str] = set()
    metadata: dict[str, str] = {}
    for path in paths:
        header = read_header(path)
        metadata.update(header.pop("__metadata__", None) or {})
        for info in header.values():
            tensors += 1
            params += math.prod(info["shape"])
            dtypes.add(info["dtype"])
    return Weights(tensors, params, tuple(sorted(dtypes)), metadata)
