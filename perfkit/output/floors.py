"""The smallest difference `perfkit doctor` found this machine can resolve for a model (its A/A floor), kept
in the results folder (`doctor.json`) so that `perfkit compare` of two stored runs can hold a change to it. A
floor belongs to one machine: it is kept and read with the CPU it was measured on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from perfkit.output.store import write_atomic

FILE = "doctor.json"


@dataclass(frozen=True)
class Floor:
    digest: str  # the model's content digest
    model: str  # its path when measured
    cpu_model: str
    floor: float  # the smallest resolvable change at the default plan, as a share (0.03: 3 %)
    rounds: int  # rounds of the A/A check it came from
    created: str


def save_floor(results_dir: str, floor: Floor) -> Path:
    path = Path(results_dir) / FILE
    kept = [f for f in _read(path) if (f.digest, f.cpu_model) != (floor.digest, floor.cpu_model)]
    write_atomic(path, json.dumps([asdict(f) for f in [*kept, floor]], indent=1) + "\n")
    return path


def load_floors(results_dir: str, cpu_model: str) -> dict[str, float]:
    """digest -> floor, for the floors measured on this CPU."""
    return {f.digest: f.floor for f in _read(Path(results_dir) / FILE) if f.cpu_model == cpu_model}


def _read(path: Path) -> list[Floor]:
    try:
        return [Floor(**entry) for entry in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):  # none yet, or damaged: doctor writes it again
        return []
