"""PMML: perfkit's own conversion to ONNX (trees, ensembles, linear and logistic regression), run beside the
JPMML engine on the same rows; the model types it does not convert named in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perfkit.backends.pmml import PmmlBackend, java_missing
from perfkit.convert import run_convert
from perfkit.core.errors import PerfkitError
from perfkit.core.spec import Target
from perfkit.native.conversion import convert
from perfkit.native.detect import prepare_native
from perfkit.native.inspect import inspect_file

pytest.importorskip("jpmml_evaluator")
needs_java = pytest.mark.skipif(java_missing() is not None, reason="no Java runtime for JPMML")

DATA = Path(__file__).parent.parent / "data" / "pmml"
HEAD = '<?xml version="1.0"?>\n<PMML version="4.4" xmlns="http://www.dmg.org/PMML-4_4">\n<Header/>\n'
FIELDS = ('<DataField name="a" optype="continuous" dataType="double"/>'
          '<DataField name="b" optype="continuous" dataType="float"/>'
          '<DataField name="c" optype="continuous" dataType="double"/>')
SCHEMA = '<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="a"/>' \
         '<MiningField name="b"/><MiningField name="c"/></MiningSchema>'


def document(target: str, model: str) -> str:
    """A PMML document: the target first in the DataDictionary (as sklearn2pmml writes it), then a, b, c."""
    return f"{HEAD}<DataDictionary>{target}{FIELDS}</DataDictionary>\n{model}\n</PMML>\n"


NUMERIC_TARGET = '<DataField name="y" optype="continuous" dataType="double"/>'
CLASS_TARGET = '<DataField name="y" optype="categorical" dataType="integer"><Value value="0"/><Value value="1"/>' \
               '<Value value="2"/></DataField>'
STRING_TARGET = '<DataField name="y" optype="categorical" dataType="string"><Value value="setosa"/>' \
                '<Value value="versicolor"/><Value value="virginica"/></DataField>'

LINEAR = document(NUMERIC_TARGET, f"""
<RegressionModel functionName="regression">{SCHEMA}
 <Targets><Target field="y" rescaleFactor="2" rescaleConstant="0.25"/></Targets>
 <RegressionTable intercept="1.5">
  <NumericPredictor name="a" coefficient="3.25"/><NumericPredictor name="b" coefficient="-1.125"/>
  <NumericPredictor name="c" coefficient="0.3"/>
 </RegressionTable>
</RegressionModel>""")

LOGISTIC = document(STRING_TARGET, f"""
<RegressionModel functionName="classification" normalizationMethod="softmax">{SCHEMA}
 <RegressionTable intercept="0.5" targetCategory="setosa">
  <NumericPredictor name="a" coefficient="-2.0"/><NumericPredictor name="c" coefficient="1.5"/>
 </RegressionTable>
 <RegressionTable intercept="-0.25" targetCategory="versicolor">
  <NumericPredictor name="b" coefficient="2.5"/>
 </RegressionTable>
 <RegressionTable intercept="0.1" targetCategory="virginica">
  <NumericPredictor name="a" coefficient="1.0"/><NumericPredictor name="b" coefficient="-0.75"/>
 </RegressionTable>
</RegressionModel>""")

BINARY_LOGIT = document(
    '<DataField name="y" optype="categorical" dataType="boolean"><Value value="false"/><Value value="true"/>'
    '</DataField>', f"""
<RegressionModel functionName="classification" normalizationMethod="logit">{SCHEMA}
 <RegressionTable intercept="-0.5" targetCategory="true">
  <NumericPredictor name="a" coefficient="1.75"/><NumericPredictor name="b" coefficient="-0.5"/>
 </RegressionTable>
 <RegressionTable intercept="0" targetCategory="false"/>
</RegressionModel>""")


def dist(p0: float, p1: float, p2: float) -> str:
    return "".join(f'<ScoreDistribution value="{k}" recordCount="{c}"/>' for k, c in enumerate((p0, p1, p2)))


# One tree, every comparison operator, a compound predicate, n-ary children with returnLastPrediction.
TREE = document(CLASS_TARGET, f"""
<TreeModel functionName="classification" noTrueChildStrategy="returnLastPrediction">{SCHEMA}
 <Node score="0"><True/>{dist(6, 3, 1)}
  <Node score="1"><SimplePredicate field="a" operator="lessThan" value="0.25"/>{dist(1, 8, 1)}
   <Node score="2"><SimplePredicate field="b" operator="greaterOrEqual" value="0.7"/>{dist(0, 1, 3)}</Node>
   <Node score="0"><SimplePredicate field="c" operator="equal" value="0.5"/>{dist(5, 0, 0)}</Node>
  </Node>
  <Node score="2"><CompoundPredicate booleanOperator="and">
    <SimplePredicate field="b" operator="greaterThan" value="0.6"/>
    <SimplePredicate field="c" operator="lessOrEqual" value="0.45"/></CompoundPredicate>{dist(1, 1, 8)}</Node>
  <Node score="1"><CompoundPredicate booleanOperator="or">
    <SimplePredicate field="a" operator="greaterThan" value="0.9"/>
    <SimplePredicate field="c" operator="greaterOrEqual" value="0.8"/></CompoundPredicate>{dist(2, 7, 1)}</Node>
 </Node>
</TreeModel>""")


def regression_tree(a: float, b: float, values: tuple[float, float, float]) -> str:
    return f"""<TreeModel functionName="regression" noTrueChildStrategy="returnLastPrediction">
  <MiningSchema><MiningField name="a"/><MiningField name="b"/></MiningSchema>
  <Node score="{values[0]}"><True/>
   <Node score="{values[1]}"><SimplePredicate field="a" operator="lessOrEqual" value="{a}"/></Node>
   <Node score="{values[2]}"><SimplePredicate field="b" operator="lessOrEqual" value="{b}"/></Node>
  </Node></TreeModel>"""


BOOSTED = document(NUMERIC_TARGET, f"""
<MiningModel functionName="regression">{SCHEMA}
 <Targets><Target field="y" rescaleFactor="0.1" rescaleConstant="3.5"/></Targets>
 <Segmentation multipleModelMethod="sum">
  {"".join(f'<Segment id="{k}"><True/>{regression_tree(0.2 + 0.1 * k, 0.7 - 0.1 * k, (k, -k, 2 * k))}</Segment>'
           for k in range(1, 6))}
 </Segmentation>
</MiningModel>""")


def class_tree(field: str, threshold: float, low: int, high: int, share: float) -> str:
    """A stump voting `low` below the threshold, `high` above, each leaf with a distribution of its own."""
    def leaf(top: int, p: float) -> str:
        rest = [k for k in range(3) if k != top]
        return dist(*[p if k == top else (1 - p) * (0.7 if k == rest[0] else 0.3) for k in range(3)])

    return f"""<TreeModel functionName="classification">
  <MiningSchema><MiningField name="{field}"/></MiningSchema>
  <Node><True/>
   <Node score="{low}"><SimplePredicate field="{field}" operator="lessOrEqual" value="{threshold}"/>
    {leaf(low, share)}</Node>
   <Node score="{high}"><True/>{leaf(high, share - 0.13)}</Node>
  </Node></TreeModel>"""


def forest(method: str) -> str:
    trees = [class_tree("a", 0.4, 0, 1, 0.81), class_tree("b", 0.5, 1, 2, 0.67), class_tree("c", 0.6, 2, 0, 0.74),
             class_tree("a", 0.7, 1, 2, 0.59), class_tree("c", 0.3, 0, 2, 0.88)]
    return document(CLASS_TARGET, f"""
<MiningModel functionName="classification">{SCHEMA}
 <Segmentation multipleModelMethod="{method}">
  {"".join(f'<Segment id="{k}" weight="{0.6 + 0.37 * k}"><True/>{t}</Segment>' for k, t in enumerate(trees, 1))}
 </Segmentation>
</MiningModel>""")


def chained_sum(k: int) -> str:
    trees = "".join(f'<Segment id="{j}"><True/>{regression_tree(0.3 + 0.2 * j, 0.2 * k + 0.1, (k, -j, j + k))}'
                    '</Segment>' for j in range(1, 4))
    return f"""<Segment id="{k}"><True/><MiningModel functionName="regression">
  <MiningSchema><MiningField name="a"/><MiningField name="b"/></MiningSchema>
  <Output><OutputField name="decision({k})" optype="continuous" dataType="double" isFinalResult="false"/></Output>
  <Targets><Target rescaleFactor="0.3" rescaleConstant="{0.1 * k}"/></Targets>
  <Segmentation multipleModelMethod="sum">{trees}</Segmentation></MiningModel></Segment>"""


# GradientBoostingClassifier's form: one sum of trees per class, chained into a softmax (here with an input too).
CHAIN = document(CLASS_TARGET, f"""
<MiningModel functionName="classification">{SCHEMA}
 <Segmentation multipleModelMethod="modelChain">
  {"".join(chained_sum(k) for k in range(3))}
  <Segment id="4"><True/><RegressionModel functionName="classification" normalizationMethod="softmax">
   <MiningSchema><MiningField name="y" usageType="target"/><MiningField name="a"/><MiningField name="decision(0)"/>
    <MiningField name="decision(1)"/><MiningField name="decision(2)"/></MiningSchema>
   {"".join(f'<RegressionTable intercept="{0.2 * k}" targetCategory="{k}"><NumericPredictor name="decision({k})" '
            f'coefficient="1.0"/><NumericPredictor name="a" coefficient="{k - 1}"/></RegressionTable>'
            for k in range(3))}
  </RegressionModel></Segment>
 </Segmentation>
</MiningModel>""")

NEURAL = document(NUMERIC_TARGET, f"""
<NeuralNetwork functionName="regression" activationFunction="identity">{SCHEMA}
 <NeuralInputs/><NeuralLayer/><NeuralOutputs/>
</NeuralNetwork>""")


def write(tmp_path, text: str, name: str = "model.pmml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def jvm():
    """One JVM for the module's tests: JPype starts it on the first evaluator and never again in a process."""
    if java_missing():
        pytest.skip(" — ".join(java_missing() or ()))
    return PmmlBackend()


def converted_parity(tmp_path, text: str, batch: int = 64):
    path = write(tmp_path, text)
    lines, result = run_convert(path, str(tmp_path / "model.onnx"), batch=batch, cache_dir=str(tmp_path / "c"),
                                isolate=False)
    return lines, result, {a.name: a for a in result.outputs}


@needs_java
def test_linear_regression_matches_jpmml(tmp_path, jvm):
    lines, result, by_name = converted_parity(tmp_path, LINEAR)
    assert list(by_name) == ["variable"]
    assert result.ok and by_name["variable"].max_abs < 1e-6, lines
    assert result.rows == 4 * 64


@needs_java
@pytest.mark.parametrize("text", [LOGISTIC, BINARY_LOGIT], ids=["softmax", "logit"])
def test_logistic_regression_gives_jpmml_labels_and_probabilities(tmp_path, jvm, text):
    lines, result, by_name = converted_parity(tmp_path, text)
    assert list(by_name) == ["label", "probabilities"]
    assert by_name["label"].agree == 1.0 and by_name["probabilities"].max_abs < 1e-6, lines


@needs_java
def test_a_tree_classifier_matches_jpmml_on_every_operator(tmp_path, jvm):
    """Values on a grid of quarters, so that equal, lessThan and greaterOrEqual meet their thresholds."""
    rows = np.random.default_rng(1).integers(0, 5, (400, 3)).astype(np.float32) / 4
    rows[:, 1] += np.where(rows[:, 1] == 0.75, -0.05, 0.0).astype(np.float32)  # b = 0.7 (float32) on its edge
    np.savez(tmp_path / "rows.npz", X=rows)
    path = write(tmp_path, TREE)
    lines, result = run_convert(path, str(tmp_path / "tree.onnx"), inputs=str(tmp_path / "rows.npz"),
                                cache_dir=str(tmp_path / "c"), isolate=False)
    by_name = {a.name: a for a in result.outputs}
    assert by_name["label"].agree == 1.0 and by_name["probabilities"].max_abs < 1e-6, lines
    assert result.rows == 400


@needs_java
def test_a_boosted_sum_of_trees_matches_jpmml(tmp_path, jvm):
    lines, result, by_name = converted_parity(tmp_path, BOOSTED)
    assert result.ok and by_name["variable"].max_abs < 1e-6, lines
    assert any("TreeEnsembleRegressor" in line for line in lines)


@needs_java
@pytest.mark.parametrize("method", ["average", "weightedAverage"])
def test_a_forest_averaging_distributions_matches_jpmml(tmp_path, jvm, method):
    lines, result, by_name = converted_parity(tmp_path, forest(method))
    assert by_name["label"].agree == 1.0 and by_name["probabilities"].max_abs < 1e-6, lines
    assert any("TreeEnsembleClassifier" in line for line in lines)


@needs_java
@pytest.mark.parametrize("method", ["majorityVote", "weightedMajorityVote"])
def test_a_forest_voting_matches_jpmml_wherever_the_vote_is_not_a_tie(tmp_path, jvm, method):
    """Five stumps over three classes tie 2-2-1 on some rows, where either label is right: JPMML and onnxruntime
    break ties each their own way, so labels are compared where one class leads."""
    path = write(tmp_path, forest(method))
    done = convert(prepare_native(path, False, None), cache_dir=str(tmp_path / "c"), isolate=False)
    rows = np.random.default_rng(2).random((300, 3)).astype(np.float32)
    with jvm.open(done.native, Target("pmml")) as session:
        label, probabilities = session.run(session.prepare({"X": rows}))
    import onnxruntime as ort

    got_label, got_probabilities = ort.InferenceSession(done.onnx_path).run(None, {"X": rows})
    top = np.sort(probabilities, axis=1)
    clear = top[:, -1] - top[:, -2] > 1e-9
    assert np.abs(probabilities - got_probabilities).max() < 1e-6
    assert clear.mean() > 0.3 and (label[clear] == got_label[clear]).all()


@needs_java
def test_a_model_chain_into_a_softmax_matches_jpmml(tmp_path, jvm):
    lines, result, by_name = converted_parity(tmp_path, CHAIN)
    assert by_name["label"].agree == 1.0 and by_name["probabilities"].max_abs < 1e-6, lines
    assert any("TreeEnsembleRegressor" in line for line in lines)


@needs_java
def test_sklearn2pmml_gradient_boosting_matches_jpmml(tmp_path, jvm):
    """A real sklearn2pmml file: GradientBoostingClassifier (30 trees, iris, is it versicolor?), a model chain
    into a logit, with boolean labels."""
    lines, result = run_convert(str(DATA / "gradient_boosting_binary.pmml"), str(tmp_path / "gb.onnx"),
                                cache_dir=str(tmp_path / "c"), batch=128, isolate=False)
    by_name = {a.name: a for a in result.outputs}
    assert result.ok and by_name["label"].agree == 1.0, lines
    assert "label string [N]" in lines[2]


def test_a_neural_network_is_named_with_the_way_out(tmp_path):
    native = prepare_native(write(tmp_path, NEURAL), False, None)
    with pytest.raises(PerfkitError, match="the PMML holds a NeuralNetwork, which perfkit does not convert") as info:
        convert(native, cache_dir=str(tmp_path / "c"), isolate=False)
    assert "skl2onnx" in info.value.fix and "onnxmltools" in info.value.fix


def test_a_pmml_file_is_detected_as_the_pmml_framework(tmp_path):
    native = prepare_native(write(tmp_path, LINEAR, "m.xml"), False, None)
    assert (native.format, native.framework, native.label) == ("pmml", "pmml", "native:pmml")


def test_the_conversion_takes_the_active_fields_in_data_dictionary_order(tmp_path):
    import onnx

    native = prepare_native(write(tmp_path, LOGISTIC), False, None)
    done = convert(native, cache_dir=str(tmp_path / "c"), isolate=False)
    proto = onnx.load(done.onnx_path)
    assert [(p.name, p.shape) for p in done.native.inputs] == [("X", (None, 3))]
    assert done.native.outputs == ("label", "probabilities")
    assert "X columns: a, b, c" in done.notes
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.STRING


def test_a_doctype_is_refused_before_parsing(tmp_path):
    text = LINEAR.replace("<PMML", '<!DOCTYPE PMML [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<PMML', 1)
    native = prepare_native(write(tmp_path, text), False, None)
    with pytest.raises(PerfkitError, match="DOCTYPE"):
        convert(native, cache_dir=str(tmp_path / "c"), isolate=False)


def test_a_categorical_input_field_is_refused(tmp_path):
    text = LINEAR.replace('name="c" optype="continuous" dataType="double"', 'name="c" optype="categorical" '
                          'dataType="string"')
    native = prepare_native(write(tmp_path, text), False, None)
    with pytest.raises(PerfkitError, match="input field 'c' is of type string"):
        convert(native, cache_dir=str(tmp_path / "c"), isolate=False)


def test_inspect_names_the_model_type_and_fields(tmp_path):
    found = inspect_file(write(tmp_path, forest("average")))
    details = dict(found.details)
    assert found.kind == "pmml" and "MiningModel" in details["model"] and "5 segments" in details["model"]
    assert details["inputs"] == "a double, b float, c double"
    assert "3 classes: 0, 1, 2" in details["target"]
    assert found.loads and found.how.startswith("perfkit bench")


def test_inspect_says_what_it_does_not_convert(tmp_path):
    found = inspect_file(write(tmp_path, NEURAL))
    assert not found.loads and "skl2onnx" in found.how
    assert dict(found.details)["problem"] == "the PMML holds a NeuralNetwork, which perfkit does not convert"


@needs_java
def test_starting_jpmml_leaves_other_imports_alone(tmp_path, jvm):
    """JPype's import hook would answer `import javax` (or an optional `import dill`) with a Java package."""
    from importlib.util import find_spec

    from perfkit.backends.pmml import load

    evaluator, _ = load(prepare_native(write(tmp_path, LINEAR), False, None))
    assert evaluator.getTargetFields()[0].getName() == "y"
    assert find_spec("javax") is None


def test_the_native_row_runs_on_the_cpu_only():
    assert "CPU only" in (PmmlBackend().unavailable(Target("pmml", "cuda")) or "")


def test_without_java_convert_writes_the_file_and_says_parity_was_not_checked(tmp_path, monkeypatch):
    from perfkit.backends.pmml import PmmlBackend

    # the backend itself reports Java missing (JPype finds this machine's JVM however JAVA_HOME is set)
    monkeypatch.setattr(PmmlBackend, "unavailable", lambda self, target: "no Java runtime found — install one")
    lines, parity = run_convert(write(tmp_path, LINEAR), str(tmp_path / "out.onnx"),
                                cache_dir=str(tmp_path / "c"), isolate=False)
    assert (tmp_path / "out.onnx").is_file() and not parity.ok
    assert lines[-1] == "parity: not checked — the native model cannot run here (no Java runtime found — install one)"


def test_a_score_that_is_not_a_number_is_one_line(tmp_path):
    bad = LINEAR.replace('intercept="1.5"', 'intercept="np.float64(1.5)"')
    with pytest.raises(PerfkitError, match="does not read as one"):
        run_convert(write(tmp_path, bad), str(tmp_path / "out.onnx"), cache_dir=str(tmp_path / "c"), isolate=False)
