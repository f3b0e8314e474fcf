"""The user's data files, read without unpickling: arrays from .npz/.npy (numpy's own formats only), rows from
.csv/.parquet. The one reader behind --inputs, --calibration and a native model's conversion sample."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfkit.core.errors import PerfkitError
from perfkit.files.formats import looks_like_pickle

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TABLE_SUFFIXES = (".csv", ".parquet")
NPZ_FIX = "save it with np.savez(path, name=array, …)"


def is_table(path_text: str) -> bool:
    return Path(path_text).suffix.lower() in TABLE_SUFFIXES


def read_table(path_text: str) -> pd.DataFrame:
    """A .csv (with a header row) or .parquet file as a DataFrame."""
    import pandas as pd

    path = Path(path_text)
    try:
        return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas' parsers raise anything from ParserError to pyarrow's own classes
        raise PerfkitError(path_text, f"could not be read as a table ({type(exc).__name__})",
                           "give a CSV with a header row of the model's column names") from None


def read_arrays(path_text: str) -> dict[str, np.ndarray] | np.ndarray:
    """The arrays of a .npz by name, or the one array of a .npy; pickled (object) arrays are refused."""
    import numpy as np

    path = Path(path_text)
    if not path.is_file():
        raise PerfkitError(path_text, "no such file" if not path.exists() else "not a file", "check the path")
    with path.open("rb") as f:
        magic = f.read(6)
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):  # 05 06: a zip with no entries
        what = "not a readable .npz/.npy file: a pickle" if looks_like_pickle(magic) else "not a .npz/.npy file"
        raise PerfkitError(path_text, f"{what}; perfkit reads numpy's own formats only", NPZ_FIX)
    name = ""  # the array being read, to name it in an error
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded:
            arrays = {}
            for name in loaded.files:
                arrays[name] = loaded[name]
            if not arrays:
                raise PerfkitError(path_text, "holds no arrays", NPZ_FIX)
            return arrays
    except ValueError as exc:
        if "pickle" in str(exc):
            which = f"'{name}' is a pickled (object) array" if name else "holds a pickled (object) array"
            raise PerfkitError(path_text, f"{which}, which perfkit will not load",
                               "save plain numeric or string arrays with np.savez") from None
        raise PerfkitError(path_text, f"not a readable .npz/.npy file ({exc})", "save it with np.savez") from None
    except (OSError, EOFError) as exc:
        raise PerfkitError(path_text, f"not a readable .npz/.npy file ({type(exc).__name__})", NPZ_FIX) from None


def read_sample(path_text: str | None) -> Any:
    """--inputs for a native model's conversion: a DataFrame from .csv/.parquet, arrays by name from .npz, a
    lone .npy array as `X` (scikit-learn's name for its features), or None."""
    if not path_text:
        return None
    if is_table(path_text):
        return read_table(path_text)
    arrays = read_arrays(path_text)
    return arrays if isinstance(arrays, dict) else {"X": arrays}
