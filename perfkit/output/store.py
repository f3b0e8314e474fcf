"""Where runs are kept. By default results/: one JSON file per run (written atomically after every row) and a
SQLite row per case. With a PostgreSQL connection string (`--store postgresql://…`, or PERFKIT_STORE) the
same tables live in that database, with each run's JSON document beside them, so a team shares one history.
Baselines stay files under results/baselines/: they are committed with the code.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfkit.core.errors import PerfkitError, brief
from perfkit.core.report import Report, Result, from_json, to_json

# One schema for both databases: BIGINT holds nanoseconds and bytes in PostgreSQL, and is INTEGER to SQLite.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created TEXT NOT NULL, model TEXT NOT NULL, digest TEXT NOT NULL,
    complete INTEGER NOT NULL DEFAULT 0, rows INTEGER NOT NULL DEFAULT 0, json_path TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS cases (
    run_id TEXT NOT NULL REFERENCES runs(run_id), idx INTEGER NOT NULL, variant TEXT NOT NULL,
    target TEXT NOT NULL, providers TEXT NOT NULL, batch INTEGER NOT NULL, status TEXT NOT NULL,
    reason TEXT NOT NULL, n INTEGER, median_ns REAL, ci_low_ns REAL, ci_high_ns REAL, p90_ns REAL,
    p99_ns REAL, cv REAL, items_per_s REAL, load_ns BIGINT, first_call_ns BIGINT, peak_rss_bytes BIGINT,
    PRIMARY KEY (run_id, idx))""",
)
DOCUMENTS = "CREATE TABLE IF NOT EXISTS run_documents (run_id TEXT PRIMARY KEY REFERENCES runs(run_id), body TEXT)"


@dataclass(frozen=True)
class RunRow:
    run_id: str
    created: str
    model: str
    complete: bool
    rows: int


@dataclass(frozen=True)
class HistoryPoint:
    """One case of one stored run, as `perfkit history` follows it across runs."""

    run_id: str
    created: str
    variant: str
    target: str
    batch: int
    median_ns: float | None
    status: str


class _Database:
    """The few SQL calls the store makes, on SQLite or PostgreSQL ('?' placeholders become '%s' there)."""

    def __init__(self, url: str | None, sqlite_path: Path) -> None:
        self.url, self.sqlite_path = url, sqlite_path
        self.postgres = bool(url)

    def connect(self) -> Any:
        """An open connection (sqlite3 or psycopg) with the schema in place."""
        if not self.url:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.sqlite_path, timeout=30)
            for statement in SCHEMA:
                conn.execute(statement)
            return conn
        try:
            import psycopg
        except ImportError:
            raise PerfkitError(f"--store {_redact(self.url)}", "a PostgreSQL store needs psycopg",
                               "pip install 'perfkit[postgres]'") from None
        try:
            pg = psycopg.connect(self.url, connect_timeout=10)
        except psycopg.Error as exc:
            raise PerfkitError(f"--store {_redact(self.url)}", f"cannot connect ({brief(exc, 160)})",
                               "check the connection string, the server and its pg_hba.conf") from None
        with pg.cursor() as cur:
            for statement in (*SCHEMA, DOCUMENTS):
                cur.execute(statement)
        pg.commit()
        return pg

    def exists(self) -> bool:
        return self.postgres or self.sqlite_path.exists()

    def run(self, conn, sql: str, params: tuple = ()) -> list[tuple[Any, ...]]:
        if self.postgres:
            with conn.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), params)
                return cur.fetchall() if cur.description else []
        return conn.execute(sql, params).fetchall()


def _redact(url: str | None) -> str:
    """A connection string without its password, for messages."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url or "")


class Store:
    def __init__(self, root: str | Path, url: str | None = None) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.db_path = self.root / "perfkit.sqlite"
        if url and not url.startswith(("postgresql://", "postgres://")):
            raise PerfkitError(f"--store {url}", "not a PostgreSQL connection string",
                               "write postgresql://user:password@host:5432/database")
        self.db = _Database(url, self.db_path)

    def _write(self, conn, report: Report) -> None:
        """The run's JSON document: a file beside the SQLite file, a row in PostgreSQL."""
        if self.db.postgres:
            self.db.run(conn, "INSERT INTO run_documents (run_id, body) VALUES (?, ?) ON CONFLICT (run_id) DO UPDATE "
                        "SET body = EXCLUDED.body", (report.run_id, to_json(report)))
        else:
            write_atomic(self.json_path(report.run_id), to_json(report))

    def json_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def begin(self, report: Report) -> None:
        with closing(self.db.connect()) as conn:
            self.db.run(conn, "INSERT INTO runs (run_id, created, model, digest, json_path) VALUES (?, ?, ?, ?, ?)",
                        (report.run_id, report.created, report.spec.model, "",
                         "postgresql" if self.db.postgres else str(self.json_path(report.run_id))))
            self._write(conn, report)
            conn.commit()

    def add(self, report: Report, result: Result) -> None:
        """Save the whole report and the new row in one transaction; a crash after this loses nothing before it."""
        s, m = result.summary, result.measurement
        with closing(self.db.connect()) as conn:
            self._write(conn, report)
            self.db.run(
                conn, "INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (report.run_id, len(report.results) - 1, result.model.label, result.target.label,
                 ",".join(result.providers), result.batch, result.status, result.reason,
                 s and s.n, s and s.median, s and s.ci_low, s and s.ci_high, s and s.p90, s and s.p99,
                 s and s.cv, result.throughput, m and m.load_ns, m and m.first_call_ns, m and m.peak_rss_bytes))
            self.db.run(conn, "UPDATE runs SET rows = ?, digest = ? WHERE run_id = ?",
                        (len(report.results), result.model.digest, report.run_id))
            conn.commit()

    def finish(self, report: Report) -> None:
        with closing(self.db.connect()) as conn:
            self._write(conn, report)
            self.db.run(conn, "UPDATE runs SET complete = ? WHERE run_id = ?", (int(report.complete), report.run_id))
            conn.commit()

    def runs(self, limit: int = 50) -> list[RunRow]:
        if not self.db.exists():
            return []
        with closing(self.db.connect()) as conn:
            rows = self.db.run(conn, "SELECT run_id, created, model, complete, rows FROM runs "
                               "ORDER BY run_id DESC LIMIT ?", (limit,))
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

    def history(self, model: str, limit: int = 20) -> list[HistoryPoint]:
        """Every case of the runs whose model path ends with `model` (a file name is enough), oldest first."""
        if not self.db.exists():
            return []
        with closing(self.db.connect()) as conn:
            runs = [r[0] for r in self.db.run(
                conn, "SELECT run_id FROM runs WHERE model = ? OR model LIKE ? ORDER BY run_id DESC LIMIT ?",
                (model, f"%/{model}", limit))]
            if not runs:
                return []
            marks = ",".join("?" * len(runs))
            rows = self.db.run(
                conn, f"SELECT c.run_id, r.created, c.variant, c.target, c.batch, c.median_ns, c.status FROM cases c "
                f"JOIN runs r ON r.run_id = c.run_id WHERE c.run_id IN ({marks}) ORDER BY c.run_id, c.idx",
                tuple(runs))
        return [HistoryPoint(*r) for r in rows]

    def load(self, ref: str) -> Report:
        """A run by id, unique id prefix, 'latest', a baseline name (results/baselines/NAME.json), or the path
        of a run's JSON file."""
        path = Path(ref)
        if ref.endswith(".json") and path.is_file():
            return from_json(path.read_text(), ref)
        baseline = self.baselines_dir / f"{ref}.json"
        if baseline.is_file():
            return from_json(baseline.read_text(), str(baseline))
        if self.db.postgres:
            return self._load_document(ref)
        ids = sorted(p.stem for p in self.runs_dir.glob("*.json")) if self.runs_dir.is_dir() else []
        if ref == "latest" and ids:
            ref = ids[-1]
        matches = [i for i in ids if i.startswith(ref)]
        if len(matches) != 1:
            what = "no run with that id" if not matches else f"{len(matches)} runs start with that id"
            raise PerfkitError(ref, f"{what} in {self.runs_dir}", "see `perfkit runs` for the ids")
        return from_json(self.json_path(matches[0]).read_text(), str(self.json_path(matches[0])))


    def _load_document(self, ref: str) -> Report:
        """A run's JSON document from PostgreSQL, by id, unique prefix or 'latest'."""
        with closing(self.db.connect()) as conn:
            if ref == "latest":
                rows = self.db.run(conn, "SELECT run_id, body FROM run_documents ORDER BY run_id DESC LIMIT 1")
            else:
                rows = self.db.run(conn, "SELECT run_id, body FROM run_documents WHERE run_id LIKE ? ORDER BY run_id "
                                   "LIMIT 2", (ref.replace("%", "") + "%",))
        if len(rows) != 1:
            what = "no run with that id" if not rows else "several runs start with that id"
            raise PerfkitError(ref, f"{what} in {_redact(self.db.url)}", "see `perfkit runs --store …` for the ids")
        return from_json(rows[0][1], f"{_redact(self.db.url)}#{rows[0][0]}")


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

