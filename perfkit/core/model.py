"""Models as nouns: a file on disk with its lineage (ONNX, or a native model beside its conversion), and the
inputs and outputs it declares. Reading them from disk is `perfkit.files`' job."""

from __future__ import annotations

from dataclasses import dataclass

EXPORTED = "export:onnx"  # the first step of a native model's ONNX conversion and its variants


@dataclass(frozen=True)
class TensorInfo:
    """One input or output: name, element type, and shape (ints, dim names, None for unnamed dims)."""

    name: str
    dtype: str  # numpy-style name: float32, int64, bool, string, bfloat16, …
    shape: tuple[int | str | None, ...] | None  # None: rank unknown
    kind: str = "tensor"  # tensor, sequence, map, optional: only tensors can be synthesised
    index_limit: int | None = None  # an integer input that indexes a table (Gather): the largest valid index


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


@dataclass(frozen=True)
class Model:
    """A model file and how it came to be; a variant is a Model with a longer lineage."""

    path: str
    format: str
    digest: str
    lineage: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return "+".join(self.lineage) or "base"

    @property
    def is_base(self) -> bool:
        """The model as given, or the ONNX conversion of a native one: what variants are measured against."""
        return self.lineage in ((), (EXPORTED,))


@dataclass(frozen=True)
class Port:
    """One input or output of a native model as its conversion named it; dtype and shape as the native model
    is fed."""

    name: str
    dtype: str = "float32"
    shape: tuple[int | str | None, ...] | None = None


@dataclass(frozen=True)
class NativeHints:
    """What the user tells perfkit about a native model that its files do not say (--task, --input-names,
    --output-names)."""

    task: str | None = None  # a Hugging Face folder's task (text-classification, …); else from its config.json
    input_names: tuple[str, ...] = ()  # a TensorFlow frozen graph's inputs and outputs, where its graph is
    output_names: tuple[str, ...] = ()  # ambiguous (several Placeholders, or several nodes nothing consumes)


NO_HINTS = NativeHints()


@dataclass(frozen=True)
class NativeModel:
    """A native model (scikit-learn, PyTorch, Keras/TensorFlow, a TensorFlow frozen graph, a Hugging Face folder,
    PMML, a Spark ML pipeline, or an MLflow folder holding one): which
    framework loads it, whether that needs trust, and the input/output names it shares with its ONNX
    conversion.

    The ONNX conversion defines the names: feeds are made for the ONNX inputs and handed to the native model
    in the same order, and the native outputs are named after the ONNX outputs, so the two compare by name.
    """

    path: str  # the file or folder the framework loads
    format: str  # sklearn, skops, torchscript, exported-program, torch-save, keras, savedmodel, huggingface,
    # frozen-graph, pmml, spark-pipeline
    framework: str  # the backend that runs it: sklearn, torch, keras, hf, tfgraph, pmml or spark
    digest: str
    trusted: bool = False  # the user allowed code-running loads (pickles, Keras lambdas)
    factory: str | None = None  # package.module:function building the module a state dict fills
    source: str = ""  # what the user named, when it differs (an MLflow folder)
    inputs: tuple[Port, ...] = ()  # filled by the export
    outputs: tuple[str, ...] = ()
    columns: bool = False  # scikit-learn fed a DataFrame, one ONNX input per column
    hints: NativeHints = NO_HINTS

    @property
    def label(self) -> str:
        return f"native:{self.framework}"

    def as_model(self) -> Model:
        """The native model as a row's model: its own file, labelled by its framework."""
        return Model(self.path, self.format, self.digest, (self.label,))
