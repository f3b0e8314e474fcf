"""MLflow model folders: read `MLmodel` (YAML), pick the flavor perfkit can run, and name the file inside
that the matching backend loads. The mlflow package is not needed, and nothing in the folder is run."""

from __future__ import annotations

from pathlib import Path

from perfkit.core.errors import PerfkitError

FLAVOR_ORDER = ("onnx", "sklearn", "pytorch", "keras", "tensorflow")  # the first one present is used
MODEL_SUFFIXES = (".onnx", ".keras", ".h5", ".pt", ".pth", ".pkl", ".joblib", ".skops")


def read_mlmodel(folder: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load((folder / "MLmodel").read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PerfkitError(str(folder / "MLmodel"), f"not valid YAML ({type(exc).__name__})",
                           "the MLmodel file of an MLflow model is YAML; log the model again") from None
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise PerfkitError(str(folder / "MLmodel"), "has no flavors section", "log the model again with MLflow")
    return data


def flavors(folder: Path) -> dict[str, dict]:
    return {k: v or {} for k, v in read_mlmodel(folder)["flavors"].items()}


def resolve(folder: Path) -> Path:
    """The model file (or SavedModel folder) of the first flavor perfkit runs."""
    found = flavors(folder)
    for flavor in FLAVOR_ORDER:
        if flavor in found:
            return _inside(folder, _model_path(folder, flavor, found[flavor]))
    names = ", ".join(found) or "none"
    raise PerfkitError(str(folder), f"an MLflow model of flavors {names}, none of which perfkit loads",
                       "log it with the onnx, sklearn, pytorch, keras or tensorflow flavor, or convert it to ONNX "
                       "(mlflow.onnx.log_model)")


def _model_path(folder: Path, flavor: str, conf: dict) -> Path:
    if flavor == "onnx":
        return folder / str(conf.get("data", "model.onnx"))
    if flavor == "sklearn":
        return folder / str(conf.get("pickled_model", "model.pkl"))
    if flavor == "tensorflow" and conf.get("saved_model_dir"):
        return folder / str(conf["saved_model_dir"])
    data = folder / str(conf.get("model_data") or conf.get("data") or "data")
    if data.is_file():
        return data
    for candidate in sorted(data.rglob("*")) if data.is_dir() else ():
        if candidate.name == "saved_model.pb":
            return candidate.parent
        if candidate.suffix in MODEL_SUFFIXES and candidate.is_file():
            return candidate
    raise PerfkitError(str(folder), f"the {flavor} flavor names '{data.name}', where no model file is",
                       "check the folder is complete (copy the whole MLflow model folder)")


def _inside(folder: Path, target: Path) -> Path:
    """A path from MLmodel must stay inside the folder: a hostile MLmodel cannot point perfkit elsewhere."""
    if not target.resolve().is_relative_to(folder.resolve()):
        raise PerfkitError(str(folder / "MLmodel"), f"names '{target}', outside the model folder",
                           "keep every file of an MLflow model inside its folder")
    if not target.exists():
        raise PerfkitError(str(folder), f"the MLmodel names '{target.relative_to(folder)}', which is missing",
                           "copy the whole MLflow model folder")
    return target
