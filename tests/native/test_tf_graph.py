"""TensorFlow frozen graphs (GraphDef .pb): built here as users freeze them (convert_variables_to_constants_v2,
tf.io.write_graph), detected without running, converted with tf2onnx and run natively beside the conversion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

pytest.importorskip("tf2onnx")
keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from perfkit.cli import main  # noqa: E402
from perfkit.convert import run_convert  # noqa: E402
from perfkit.core.errors import PerfkitError  # noqa: E402
from perfkit.core.model import NativeHints  # noqa: E402
from perfkit.files.formats import sniff  # noqa: E402
from perfkit.native.detect import detect, is_native  # noqa: E402
from perfkit.native.inspect import inspect_file  # noqa: E402
from tests.conftest import graph_model, tensor  # noqa: E402

QUICK = ["--quick", "--no-save", "--no-isolate", "--min-time", "0", "--max-time", "0.1"]


def write_frozen(fn, folder: Path, name: str) -> str:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    tf.io.write_graph(convert_variables_to_constants_v2(fn).graph.as_graph_def(), str(folder), name, as_text=False)
    return str(folder / name)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, str]:
    """mlp.pb: a Keras model frozen (one Placeholder, one output); two.pb: two outputs nothing consumes;
    any.pb: a Placeholder whose middle dim is unknown."""
    folder = tmp_path_factory.mktemp("graphs")
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)])
    spec = tf.TensorSpec([None, 8], tf.float32, name="x")
    written = {"mlp": write_frozen(tf.function(lambda x: mlp(x)).get_concrete_function(spec), folder, "mlp.pb")}

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="a")])
    def two(a):
        return {"total": tf.reduce_sum(a, 1), "peak": tf.reduce_max(a, 1) * 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None, None, 4], tf.float32, name="seq")])
    def pooled(seq):
        return tf.reduce_mean(tf.nn.relu(seq), axis=1)

    written["two"] = write_frozen(two.get_concrete_function(), folder, "two.pb")
    written["any"] = write_frozen(pooled.get_concrete_function(), folder, "any.pb")
    return written


def convert(tmp_path, path: str, **kw):
    return run_convert(path, str(tmp_path / "out.onnx"), cache_dir=str(tmp_path / "c"), isolate=False, batch=4,
                       **kw)


def onnx_ends(path: Path) -> tuple[list[str], list[str]]:
    g = onnx.load(str(path)).graph
    return [i.name for i in g.input], [o.name for o in g.output]


def test_a_frozen_keras_model_converts_with_clean_names_and_matches(tmp_path, graphs):
    lines, parity = convert(tmp_path, graphs["mlp"])
    assert parity.ok, lines
    assert "(frozen-graph) — tf2onnx from the GraphDef" in lines[0]
    assert lines[1] == "inputs:  x float32 [N, 8]" and lines[2] == "outputs: Identity float32 [N, 3]"
    assert onnx_ends(tmp_path / "out.onnx") == (["x"], ["Identity"])  # no ":0": parity compares by these
    assert parity.rows == 4 * 4 and parity.outputs[0].max_abs < 1e-5


def test_bench_shows_the_native_tensorflow_row_beside_the_onnx_row(tmp_path, graphs, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["bench", graphs["mlp"], *QUICK, "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    native_row = next(line for line in result.stdout.splitlines() if "native:tfgraph" in line)
    onnx_row = next(line for line in result.stdout.splitlines() if "export:onnx" in line)
    assert "tfgraph:cpu" in native_row and "tensorflow:cpu" in native_row and "reference" in native_row
    assert "1.000000" in onnx_row  # its cosine against the native outputs
    assert "native vs ONNX, batch 1" in result.stdout


def test_two_outputs_nothing_consumes_ask_for_output_names_then_convert_in_that_order(tmp_path, graphs):
    with pytest.raises(PerfkitError, match="2 nodes are consumed by none: Identity, Identity_1") as err:
        convert(tmp_path, graphs["two"])
    assert "--output-names" in err.value.fix
    hints = NativeHints(output_names=("Identity_1", "Identity:0"))
    lines, parity = convert(tmp_path, graphs["two"], hints=hints)
    assert parity.ok, lines
    assert [a.name for a in parity.outputs] == ["Identity_1", "Identity"]
    assert onnx_ends(tmp_path / "out.onnx") == (["a"], ["Identity_1", "Identity"])


def test_an_inner_tensor_can_be_the_input(tmp_path, graphs):
    """--input-names cuts the graph where the user says: here after the Max, fed [N]."""
    hints = NativeHints(input_names=("Max",), output_names=("Identity",))
    lines, parity = convert(tmp_path, graphs["two"], hints=hints)
    assert parity.ok, lines
    assert lines[1] == "inputs:  Max float32 [N]"


def test_shape_fills_an_unknown_dim_and_the_batch_stays_free(tmp_path, graphs):
    lines, parity = convert(tmp_path, graphs["any"], shapes=("seq=2x5x4",))
    assert parity.ok, lines
    assert lines[1] == "inputs:  seq float32 [N, 5, 4]"
    with pytest.raises(PerfkitError, match="--shape seq has 2 dims; the graph's seq has 3"):
        convert(tmp_path, graphs["any"], shapes=("seq=2x4",))


def test_a_truncated_graph_is_one_line_exit_2(tmp_path, graphs, monkeypatch):
    data = Path(graphs["mlp"]).read_bytes()
    (tmp_path / "cut.pb").write_bytes(data[:len(data) // 2])
    monkeypatch.chdir(tmp_path)
    for command in (["inspect", "cut.pb"], ["convert", "cut.pb", "-o", "cut.onnx"], ["bench", "cut.pb", *QUICK]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and "a damaged TensorFlow GraphDef" in result.stderr


def test_an_op_this_tensorflow_does_not_know_is_one_line(tmp_path, graphs):
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(Path(graphs["mlp"]).read_bytes())
    next(n for n in graph_def.node if n.op == "Relu").op = "FancyRelu"
    (tmp_path / "odd.pb").write_bytes(graph_def.SerializeToString())
    with pytest.raises(PerfkitError, match=r"TensorFlow [\d.]+ does not know the op FancyRelu"):
        convert(tmp_path, str(tmp_path / "odd.pb"))


def test_a_graphdef_is_native_and_an_onnx_file_named_pb_stays_onnx(tmp_path, graphs):
    native = detect(graphs["mlp"])
    assert (native.format, native.framework, native.label) == ("frozen-graph", "tfgraph", "native:tfgraph")
    assert is_native(graphs["mlp"]) and sniff(Path(graphs["mlp"])).kind == "graphdef"
    onnx.save(graph_model([onnx.helper.make_node("Relu", ["x"], ["y"])], [tensor("x")], [tensor("y")]),
              tmp_path / "model.pb")
    assert not is_native(str(tmp_path / "model.pb")) and sniff(tmp_path / "model.pb").kind == "onnx"
    assert inspect_file(str(tmp_path / "model.pb")).kind == "onnx"


def test_inspect_names_the_ends_without_importing_tensorflow(graphs):
    code = ("import sys; from perfkit.native.inspect import inspect_file\n"
            f"found = inspect_file({graphs['mlp']!r}); d = dict(found.details)\n"
            "print(found.kind, found.loads, d['input'], d['output'], found.how.split()[:2],\n"
            "      'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[0] == "frozen-graph True x: float32 [?, 8] Identity ['perfkit', 'bench'] False"
    ambiguous = inspect_file(graphs["two"])
    assert "--output-names" in ambiguous.how
    assert dict(ambiguous.details)["outputs"] == "2 nodes are consumed by none: Identity, Identity_1"


def test_the_native_session_gives_the_conversions_outputs_by_name(tmp_path, graphs):
    from perfkit.backends.tfgraph import TfGraphBackend
    from perfkit.core.spec import Target
    from perfkit.native.conversion import convert as cached
    from perfkit.native.detect import prepare_native

    hints = NativeHints(output_names=("Identity", "Identity_1"))
    native = cached(prepare_native(graphs["two"], False, None, hints), cache_dir=str(tmp_path / "c"),
                    isolate=False).native
    a = np.arange(12, dtype=np.float32).reshape(2, 6)
    with TfGraphBackend().open(native, Target("tfgraph", "cpu")) as session:
        assert session.output_names == ("Identity", "Identity_1")
        peak, total = session.run(session.prepare({"a": a}))
        session.bind(session.prepare({"a": a}))()
    assert np.allclose(peak, [10, 22]) and np.allclose(total, [15, 51])
