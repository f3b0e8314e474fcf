"""Load runs on disk: results/load/RUN.json, written whole after every row, found by id, prefix or 'latest'."""

from __future__ import annotations

from pathlib import Path

from perfkit.core.errors import PerfkitError
from perfkit.core.load import LoadReport, load_report_from_json
from perfkit.output.load_render import render_load
from perfkit.output.store import write_atomic


class LoadStore:
    def __init__(self, root: str | Path) -> None:
        self.folder = Path(root) / "load"

    def save(self, report: LoadReport) -> Path:
        path = self.folder / f"{report.run_id}.json"
        write_atomic(path, render_load(report, "json"))
        return path

    def ids(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.is_dir() else []

    def find(self, ref: str) -> LoadReport | None:
        """The load run `ref` names (an id, a unique prefix, 'latest-load', or a path), None when it names none."""
        path = Path(ref)
        if ref.endswith(".json") and path.is_file():
            text = path.read_text()
            return load_report_from_json(text, ref) if '"perfkit-load/' in text[:200] else None
        ids = self.ids()
        if ref == "latest-load" and ids:
            ref = ids[-1]
        matches = [i for i in ids if i.startswith(ref)]
        if not matches:
            return None
        if len(matches) > 1:
            raise PerfkitError(ref, f"{len(matches)} load runs start with that id", "see `perfkit runs` for the ids")
        return load_report_from_json((self.folder / f"{matches[0]}.json").read_text(), matches[0])

    def of_model(self, model: str, limit: int) -> list[LoadReport]:
        """The load runs of a model path, or a file name it ends with, oldest first."""
        runs = [r for r in self.listed(10_000) if r.spec.bench.model == model or
                r.spec.bench.model.endswith(f"/{model}")]
        return list(reversed(runs[:limit]))

    def listed(self, limit: int) -> list[LoadReport]:
        return [r for i in reversed(self.ids()[-limit:]) if (r := self.find(i))]
