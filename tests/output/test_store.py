from dataclasses import replace

import pytest

from perfkit import bench
from perfkit.core.errors import PerfkitError
from perfkit.options import make_spec
from perfkit.output.store import Store, write_atomic
from tests.conftest import FAST


def test_every_row_is_saved_as_it_comes(relu_model, tmp_path, monkeypatch):
    store_dir = tmp_path / "results"
    seen = []
    real_add = Store.add

    def spy(self, report, result):
        real_add(self, report, result)
        seen.append(len(Store(store_dir).load(report.run_id).results))

    monkeypatch.setattr(Store, "add", spy)
    report = bench.run(make_spec(relu_model, batch=(1, 2, 3), plan=FAST, results_dir=str(store_dir)))
    assert seen == [1, 2, 3]
    (row,) = Store(store_dir).runs()
    assert (row.run_id, row.rows, row.complete) == (report.run_id, 3, True)


def test_cases_table_has_one_row_per_case(relu_model, tmp_path):
    import sqlite3

    report = bench.run(make_spec(relu_model, batch=(1, 2), plan=FAST, results_dir=str(tmp_path)))
    with sqlite3.connect(tmp_path / "perfkit.sqlite") as conn:
        rows = conn.execute("SELECT batch, status, median_ns > 0, providers FROM cases WHERE run_id = ?",
                            (report.run_id,)).fetchall()
    assert rows == [(1, "ok", 1, "CPUExecutionProvider"), (2, "ok", 1, "CPUExecutionProvider")]


def test_an_interrupted_run_stays_readable_and_marked(relu_model, tmp_path, monkeypatch):
    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "measure_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench.run(make_spec(relu_model, plan=FAST, results_dir=str(tmp_path)))
    (row,) = Store(tmp_path).runs()
    assert not row.complete
    assert Store(tmp_path).load("latest").complete is False


def test_load_by_prefix_latest_and_path(relu_model, tmp_path):
    spec = make_spec(relu_model, plan=FAST, results_dir=str(tmp_path))
    first = bench.run(spec)
    second = bench.run(replace(spec))
    store = Store(tmp_path)
    assert store.load("latest").run_id == max(first.run_id, second.run_id)
    assert store.load(first.run_id).run_id == first.run_id
    with pytest.raises(PerfkitError, match="2 runs start with that id"):
        store.load("2")
    assert store.load(str(store.json_path(first.run_id))).run_id == first.run_id
    with pytest.raises(PerfkitError, match="no run with that id"):
        store.load("19990101")


def test_atomic_write_leaves_old_content_on_failure(tmp_path):
    path = tmp_path / "run.json"
    write_atomic(path, "old")

    with pytest.raises(TypeError):
        write_atomic(path, 12345)  # not text: fails mid-write
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
