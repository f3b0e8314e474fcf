"""results/: one JSON file per run (written atomically after every row) and a SQLite row per case."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from perfkit.errors import PerfkitError
from perfkit.report import Report, Result, from_json, to_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created TEXT NOT NULL, model TEXT NOT NULL, digest TEXT NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0, rows INTEGER NOT NULL DEFAULT 0, json_path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cases (
    run_id TEXT NOT NULL REFERENCES runs(run_id), idx INTEGER NOT NULL, variant TEXT NOT NULL,
    target TEXT NOT NULL, providers TEXT NOT NULL, batch INTEGER NOT NULL, status TEXT NOT NULL,
    reason TEXT NOT NULL, n INTEGER, median_ns REAL, ci_low_ns REAL, ci_high_ns REAL, p90_ns REAL,
    p99_ns REAL, cv REAL, items_per_s REAL, load_ns INTEGER, first_call_ns INTEGER, peak_rss_bytes INTEGER,
    PRIMARY KEY (run_id, idx));
"""


@dataclass(frozen=True)
class RunRow:
    run_id: str
    created: str
    model: str
    complete: bool
    rows: int


class Store:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.db_path = self.root / "perfkit.sqlite"

    def _connect(self) -> sqlite3.Connection:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, timeout=30)
        conn.executescript(SCHEMA)
        return conn

    def json_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def begin(self, report: Report) -> None:
        write_atomic(self.json_path(report.run_id), to_json(report))
        with closing(self._connect()) as conn, conn:
            conn.execute("INSERT INTO runs (run_id, created, model, digest, json_path) VALUES (?, ?, ?, ?, ?)",
                         (report.run_id, report.created, report.spec.model, "",
                          str(self.json_path(report.run_id))))

    def add(self, report: Report, result: Result) -> None:
        """Save the whole report (atomically) and the new row; a crash after this loses nothing before it."""
        write_atomic(self.json_path(report.run_id), to_json(report))
        s, m = result.summary, result.measurement
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (report.run_id, len(report.results) - 1, result.model.label, result.target.label,
                 ",".join(result.providers), result.batch, result.status, result.reason,
                 s and s.n, s and s.median, s and s.ci_low, s and s.ci_high, s and s.p90, s and s.p99,
                 s and s.cv, result.throughput, m and m.load_ns, m and m.first_call_ns, m and m.peak_rss_bytes))
            conn.execute("UPDATE runs SET rows = ?, digest = ? WHERE run_id = ?",
                         (len(report.results), result.model.digest, report.run_id))

    def finish(self, report: Report) -> None:
        write_atomic(self.json_path(report.run_id), to_json(report))
        with closing(self._connect()) as conn, conn:
            conn.execute("UPDATE runs SET complete = ? WHERE run_id = ?", (int(report.complete), report.run_id))

    def runs(self, limit: int = 50) -> list[RunRow]:
        if not self.db_path.exists():
            return []
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT run_id, created, model, complete, rows FROM runs "
                                "ORDER BY run_id DESC LIMIT ?", (limit,)).fetchall()
        return [RunRow(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    @property
    def baselines_dir(self) -> Path:
        return self.root / "baselines"

    def save_baseline(self, ref: str, name: str) -> Path:
        """Copy a run into results/baselines/NAME.json, the file a team commits."""
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise PerfkitError(name, "not a baseline name", "use letters, digits, '-', '_' and '.'")
        report = self.load(ref)
        target = self.baselines_dir / f"{name}.json"
        write_atomic(target, to_json(report))
        return target

    def history(self, model: str, limit: int = 20) -> list[tuple[str, str, str, str, int, float | None, str]]:
        """(run_id, created, variant, target, batch, median_ns, status) of every case of runs whose model
        path ends with `model` (a file name is enough), oldest first."""
        if not self.db_path.exists():
            return []
        with closing(self._connect()) as conn:
            runs = [r[0] for r in conn.execute(
                "SELECT run_id FROM runs WHERE model = ? OR model LIKE ? ORDER BY run_id DESC LIMIT ?",
                (model, f"%/{model}", limit)).fetchall()]
            if not runs:
                return []
            marks = ",".join("?" * len(runs))
            rows = conn.execute(
                f"SELECT c.run_id, r.created, c.variant, c.target, c.batch, c.median_ns, c.status FROM cases c "
                f"JOIN runs r ON r.run_id = c.run_id WHERE c.run_id IN ({marks}) ORDER BY c.run_id, c.idx",
                runs).fetchall()
        return [tuple(r) for r in rows]

    def load(self, ref: str) -> Report:
        """A run by id, unique id prefix, 'latest', a baseline name (results/baselines/NAME.json), or the path
        of a run's JSON file."""
        path = Path(ref)
        if ref.endswith(".json") and path.is_file():
            return from_json(path.read_text(), ref)
        baseline = self.baselines_dir / f"{ref}.json"
        if baseline.is_file():
            return from_json(baseline.read_text(), str(baseline))
        ids = sorted(p.stem for p in self.runs_dir.glob("*.json")) if self.runs_dir.is_dir() else []
        if ref == "latest" and ids:
            ref = ids[-1]
        matches = [i for i in ids if i.startswith(ref)]
        if len(matches) != 1:
            what = "no run with that id" if not matches else f"{len(matches)} runs start with that id"
            raise PerfkitError(ref, f"{what} in {self.runs_dir}", "see `perfkit runs` for the ids")
        return from_json(self.json_path(matches[0]).read_text(), str(self.json_path(matches[0])))


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write to a temporary file beside `path`, then rename over it: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the file is the user's, readable as any they write
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
