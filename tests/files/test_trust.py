"""The pickle scan reads what a pickle would import without running it; the gate refuses untrusted pickles."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from perfkit.core.errors import PerfkitError
from perfkit.files.trust import is_code_running, require_trust, scan_bytes, scan_file


class RunsCommand:
    """Unpickling this runs a shell command: the classic malicious pickle."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_a_command_running_pickle_is_named_at_every_protocol(tmp_path, protocol):
    marker = tmp_path / "ran"
    scan = scan_bytes(pickle.dumps({"weights": [1.0, 2.0], "x": RunsCommand(str(marker))}, protocol=protocol))
    assert scan.imports == [f"{os.system.__module__}.system"]
    assert scan.dangerous() == [f"{os.system.__module__}.system"]
    assert "can run any code" in scan.summary()
    assert not marker.exists()  # scanned, never run


def test_classes_of_modules_that_are_not_installed_are_listed_not_imported():
    # GLOBAL opcodes for a module that does not exist: unpickling would fail to import; the scan just reads
    data = b"\x80\x02cnot_installed_pkg.sub\nModel\nq\x00)\x81q\x01."
    scan = scan_bytes(data)
    assert scan.imports == ["not_installed_pkg.sub.Model"]
    assert scan.dangerous() == []


def test_an_import_whose_name_is_computed_at_load_time_counts_as_dangerous():
    # STACK_GLOBAL fed by a list rather than strings: the name is not known until load time
    data = b"\x80\x04]\x94\x8c\x01x\x94\x93\x94."
    scan = scan_bytes(data)
    assert scan.computed_imports == 1
    assert "computed at load time" in scan.dangerous()[0]


def test_joblib_array_data_is_stepped_over_so_code_after_it_is_still_found(tmp_path):
    joblib = pytest.importorskip("joblib")
    marker = tmp_path / "ran"
    payload = {"numbers": np.arange(1000, dtype=np.float64), "text": np.array(["ab", "cde"]),
               "objects": np.array([1, "x", RunsCommand(str(marker))], dtype=object),
               "after": RunsCommand(str(marker))}
    joblib.dump(payload, tmp_path / "m.joblib")
    scan = scan_file(tmp_path / "m.joblib")
    assert not scan.stopped
    assert "joblib.numpy_pickle.NumpyArrayWrapper" in scan.imports
    assert f"{os.system.__module__}.system" in scan.dangerous()
    assert not marker.exists()


@pytest.mark.parametrize("compress", [3, ("gzip", 3), ("bz2", 3), ("xz", 3)])
def test_compressed_joblib_files_are_scanned_inside(tmp_path, compress):
    joblib = pytest.importorskip("joblib")
    joblib.dump({"w": np.ones(10), "x": RunsCommand("never")}, tmp_path / "m.joblib", compress=compress)
    assert f"{os.system.__module__}.system" in scan_file(tmp_path / "m.joblib").dangerous()


def test_pickles_inside_a_zip_archive_are_scanned(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(RunsCommand("never"), protocol=2))
        z.writestr("archive/version", "3")
    assert scan_file(path).dangerous() == [f"{os.system.__module__}.system"]


def test_bytes_that_are_not_a_pickle_say_so():
    scan = scan_bytes(b"\x80\x02\xff\xff\xff")
    assert scan.stopped.startswith("not a readable pickle at byte ") and scan.imports == []


def test_the_gate_refuses_without_trust_and_names_the_imports(tmp_path, monkeypatch):
    monkeypatch.delenv("PERFKIT_TRUST", raising=False)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(RunsCommand("never")))
    with pytest.raises(PerfkitError) as err:
        require_trust(str(path), False, "this file")
    assert "system" in err.value.what and "--trust" in err.value.fix
    require_trust(str(path), True, "this file")  # the flag lets it through
    monkeypatch.setenv("PERFKIT_TRUST", "1")
    require_trust(str(path), False, "this file")  # so does the environment


@pytest.mark.parametrize("name, dangerous", [
    ("posix.system", True), ("builtins.eval", True), ("subprocess.Popen", True), ("__builtin__.getattr", True),
    ("sklearn.pipeline.Pipeline", False), ("numpy.dtype", False), ("collections.OrderedDict", False),
])
def test_which_imports_can_run_code(name, dangerous):
    assert is_code_running(name) is dangerous


def test_a_legacy_torch_file_of_several_pickles_and_raw_data_is_scanned_to_the_tensor_bytes():
    out = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(obj, out, protocol=2)
    pickle.dump(RunsCommand("never"), out, protocol=2)
    out.write(b"\x00\x01raw tensor bytes that are not a pickle")
    scan = scan_bytes(out.getvalue())
    assert scan.dangerous() == [f"{os.system.__module__}.system"]
    assert not scan.stopped
