"""The team store: the same tables in a real PostgreSQL server, chosen by one connection string.

.ci/run installs Debian's postgresql, starts it and sets PERFKIT_TEST_POSTGRES; elsewhere these tests are
skipped with the reason. Each test works in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid

import pytest
from click.testing import CliRunner

from perfkit import bench
from perfkit.cli import main
from perfkit.core.errors import PerfkitError
from perfkit.options import make_spec
from perfkit.output.store import Store
from tests.conftest import FAST

URL = os.environ.get("PERFKIT_TEST_POSTGRES")
pytestmark = pytest.mark.skipif(not URL, reason="no PostgreSQL server: set PERFKIT_TEST_POSTGRES "
                                "(.ci/run installs and starts one)")


@pytest.fixture
def store_url():
    """The server's URL with a fresh search_path schema, so tests never see each other's runs."""
    psycopg = pytest.importorskip("psycopg")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in URL else "?"
    yield f"{URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_run_is_stored_listed_loaded_and_compared_in_postgresql(relu_model, tmp_path, store_url, monkeypatch):
    spec = make_spec(relu_model, plan=FAST, results_dir=str(tmp_path / "results"), store=store_url, batch=(1, 4))
    first = bench.run(spec)
    second = bench.run(spec)
    assert not (tmp_path / "results" / "perfkit.sqlite").exists()  # nothing went to the local SQLite
    store = Store(tmp_path / "results", store_url)
    assert [r.run_id for r in store.runs()] == [second.run_id, first.run_id]
    assert store.runs()[0].rows == 2 and store.runs()[0].complete
    loaded = store.load(first.run_id[:-2])  # a unique prefix
    assert loaded.results[1].measurement.samples_ns == first.results[1].measurement.samples_ns
    assert len(store.history("model.onnx")) == 4
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PERFKIT_STORE", store_url)
    cli = CliRunner()
    listed = cli.invoke(main, ["runs"])
    assert first.run_id in listed.stdout and second.run_id in listed.stdout
    compared = cli.invoke(main, ["compare", first.run_id, "latest"])
    assert compared.exit_code == 0 and "base on ort:cpu, batch 4" in compared.stdout
    shown = cli.invoke(main, ["show", "latest", "--format", "csv"])
    assert shown.exit_code == 0 and second.run_id in shown.stdout


def test_a_bad_connection_string_is_one_line_without_the_password(tmp_path):
    with pytest.raises(PerfkitError) as err:
        Store(tmp_path, "postgresql://someone:secret@127.0.0.1:1/nothing").runs()
    assert "cannot connect" in err.value.what and "secret" not in str(err.value)
    with pytest.raises(PerfkitError, match="not a PostgreSQL connection string"):
        Store(tmp_path, "mysql://x")
