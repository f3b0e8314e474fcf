"""The user's data files: numpy's own formats without unpickling, tables with pandas."""

import pickle

import numpy as np
import pytest

from perfkit.core.errors import PerfkitError
from perfkit.files.data import read_arrays, read_sample, read_table


def test_a_npz_gives_its_arrays_by_name_and_a_npy_its_one_array(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.ones(2), b=np.zeros(3))
    np.save(tmp_path / "d.npy", np.arange(4))
    arrays = read_arrays(str(tmp_path / "d.npz"))
    assert sorted(arrays) == ["a", "b"] and arrays["b"].shape == (3,)
    assert read_arrays(str(tmp_path / "d.npy")).tolist() == [0, 1, 2, 3]


def test_a_pickle_is_refused_before_numpy_sees_it(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(PerfkitError, match=r"not a readable \.npz/\.npy file: a pickle; perfkit reads numpy's own "
                                           r"formats only — save it with np\.savez"):
        read_arrays(str(path))


def test_an_object_array_is_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(PerfkitError, match=r"holds a pickled \(object\) array"):
        read_arrays(str(tmp_path / "o.npy"))


def test_a_sample_for_a_conversion_is_a_table_arrays_or_one_array_named_x(tmp_path):
    (tmp_path / "rows.csv").write_text("a,b\n1,2.5\n3,4.5\n")
    np.save(tmp_path / "one.npy", np.ones((2, 3), np.float32))
    assert list(read_sample(str(tmp_path / "rows.csv")).columns) == ["a", "b"]
    assert list(read_sample(str(tmp_path / "one.npy"))) == ["X"]  # scikit-learn's name for its features
    assert read_sample(None) is None


def test_a_table_that_will_not_parse_is_one_line(tmp_path):
    path = tmp_path / "rows.parquet"
    path.write_text("not parquet")
    with pytest.raises(PerfkitError, match="could not be read as a table"):
        read_table(str(path))


def test_an_empty_npz_and_an_object_array_are_named(tmp_path):
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(PerfkitError, match=r"empty.npz: holds no arrays — save it with np.savez"):
        read_arrays(str(tmp_path / "empty.npz"))
    np.savez(tmp_path / "obj.npz", x=np.ones(3, np.float32), labels=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(PerfkitError, match=r"obj.npz: 'labels' is a pickled \(object\) array, which perfkit will not"):
        read_arrays(str(tmp_path / "obj.npz"))
