"""A PMML document read without running it: the XML parsed with the standard library, namespace-agnostic and
refused when it declares a DOCTYPE (PMML needs none, and entities are how XML reaches outside the file); its model
element, active fields, target and classes, which the converter, the JPMML backend and `perfkit inspect` share."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from perfkit.core.errors import PerfkitError

# The model elements PMML 4.4 defines; the first of these under <PMML> is the model.
MODEL_TYPES = ("AnomalyDetectionModel", "AssociationModel", "BayesianNetworkModel", "BaselineModel",
               "ClusteringModel", "GaussianProcessModel", "GeneralRegressionModel", "MiningModel",
               "NaiveBayesModel", "NearestNeighborModel", "NeuralNetwork", "RegressionModel", "RuleSetModel",
               "Scorecard", "SequenceModel", "SupportVectorMachineModel", "TextModel", "TimeSeriesModel",
               "TreeModel")
ACTIVE = ("active", None)  # a MiningField's usageType: active is the default
TARGET = ("target", "predicted")  # predicted: PMML 3's name for target


@dataclass(frozen=True)
class Field:
    name: str
    data_type: str  # double, float, integer, string, boolean, …; "" for a field the DataDictionary lacks
    op_type: str  # continuous, categorical, ordinal


@dataclass(frozen=True)
class PmmlSchema:
    """What a PMML model takes and gives, as its conversion and the native row agree on it."""

    model_type: str  # TreeModel, MiningModel, RegressionModel, NeuralNetwork, …
    function: str  # regression, classification, clustering, …
    inputs: tuple[Field, ...]  # the active fields, in DataDictionary order: the columns of the input X
    target: Field | None
    classes: tuple[str, ...]  # a classifier's categories as the document spells them, in its order
    probability_fields: tuple[str, ...]  # the OutputField giving each class's probability, "" where none does
    version: str
    producer: str  # the Header's Application, where it names one

    @property
    def probability_columns(self) -> tuple[str, ...]:
        """The column JPMML gives each class's probability in, once `with_probability_outputs` has added those
        the document lacks."""
        return tuple(n or probability_field(c) for c, n in zip(self.classes, self.probability_fields, strict=True))

    @property
    def label_type(self) -> str:
        """The ONNX label's element type: int64 for an integer target, else the categories as strings."""
        return "int64" if self.target is not None and self.target.data_type == "integer" else "string"


def parse(path: str | Path) -> ET.Element:
    """The document's root with namespaces dropped from element names (PMML 3.x and 4.x alike)."""
    data = Path(path).read_bytes()
    return parse_bytes(data, str(path))


def parse_bytes(data: bytes, subject: str) -> ET.Element:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise PerfkitError(subject, "the PMML declares a DOCTYPE or entities, which perfkit does not read",
                           "remove the DOCTYPE: PMML needs none")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise PerfkitError(subject, f"not well-formed XML ({exc})", "write the PMML file again") from None
    for element in root.iter():
        if isinstance(element.tag, str):
            element.tag = local(element.tag)
    if root.tag != "PMML":
        raise PerfkitError(subject, f"an XML document whose root is <{root.tag}>, not <PMML>",
                           "give a PMML file")
    return root


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def model_element(root: ET.Element, subject: str) -> ET.Element:
    for child in root:
        if child.tag in MODEL_TYPES:
            return child
    raise PerfkitError(subject, "the PMML holds no model element", "export the model to PMML again")


def read_schema(root: ET.Element, subject: str) -> PmmlSchema:
    model = model_element(root, subject)
    dictionary = {f.get("name", ""): f for f in root.iterfind("DataDictionary/DataField")}
    mining = model.findall("MiningSchema/MiningField")
    active = {m.get("name", "") for m in mining if m.get("usageType") in ACTIVE}
    order = [name for name in dictionary if name in active] + \
        [m.get("name", "") for m in mining if m.get("usageType") in ACTIVE and m.get("name") not in dictionary]
    inputs = tuple(_field(name, dictionary.get(name)) for name in order)
    target_name = next((m.get("name", "") for m in mining if m.get("usageType") in TARGET), None)
    target = None if target_name is None else _field(target_name, dictionary.get(target_name))
    function = model.get("functionName", "")
    classes = _classes(model, dictionary.get(target_name or "")) if function == "classification" else ()
    application = root.find("Header/Application")
    producer = "" if application is None else \
        " ".join(v for v in (application.get("name"), application.get("version")) if v)
    return PmmlSchema(model.tag, function, inputs, target, classes, _probability_fields(model, classes),
                      root.get("version", ""), producer)


def _field(name: str, element: ET.Element | None) -> Field:
    if element is None:
        return Field(name, "", "")
    return Field(name, element.get("dataType", ""), element.get("optype", ""))


def _classes(model: ET.Element, target: ET.Element | None) -> tuple[str, ...]:
    """The target's valid values where the DataDictionary lists them, else the categories the model names, in
    the order it first names them."""
    if target is not None:
        listed = [v.get("value", "") for v in target.iterfind("Value") if v.get("property", "valid") == "valid"]
        if listed:
            return tuple(listed)
    seen: dict[str, None] = {}
    for element in model.iter():
        if element.tag == "RegressionTable" and element.get("targetCategory") is not None:
            seen[element.get("targetCategory", "")] = None
        elif element.tag == "ScoreDistribution":
            seen[element.get("value", "")] = None
        elif element.tag == "Node" and element.get("score") is not None and not any(
                c.tag == "ScoreDistribution" for c in element):
            seen[element.get("score", "")] = None
    return tuple(seen)


def _probability_fields(model: ET.Element, classes: tuple[str, ...]) -> tuple[str, ...]:
    named = {o.get("value", ""): o.get("name", "") for o in _final_outputs(model)
             if o.get("feature") == "probability" and o.get("value") is not None}
    return tuple(named.get(c, "") for c in classes)


def _final_outputs(model: ET.Element) -> list[ET.Element]:
    """The model's OutputFields, and those of a model chain's last segment, which JPMML gives as the chain's."""
    out = model.findall("Output/OutputField")
    last = _chain_end(model)
    return out if last is None else out + _final_outputs(last)


def _chain_end(model: ET.Element) -> ET.Element | None:
    """A model chain's last model (in a document parsed with or without namespaces), else None."""
    segmentation = next((c for c in model if _named(c, "Segmentation")), None)
    if segmentation is None or segmentation.get("multipleModelMethod") != "modelChain":
        return None
    segments = [c for c in segmentation if _named(c, "Segment")]
    return next((c for c in segments[-1] if _named(c, *MODEL_TYPES)), None) if segments else None


def _named(element: ET.Element, *names: str) -> bool:
    return isinstance(element.tag, str) and local(element.tag) in names


def with_probability_outputs(data: bytes, schema: PmmlSchema, subject: str) -> bytes:
    """The document with an OutputField for each class's probability its model lacks (JPMML returns only the
    label otherwise), placed after the MiningSchema as PMML orders a model's parts; a model chain's go on its
    last model, since JPMML's chain has no probabilities of its own."""
    if all(schema.probability_fields):
        return data
    root = ET.fromstring(data)  # parse_bytes has refused DOCTYPEs already
    model = next(c for c in root if _named(c, schema.model_type))
    space = model.tag[:-len(schema.model_type)]  # "{uri}" or ""
    while (last := _chain_end(model)) is not None:  # JPMML gives a chain's probabilities from its last model
        model = last
    output = next((c for c in model if _named(c, "Output")), None)
    if output is None:
        where = next(k for k, c in enumerate(model) if _named(c, "MiningSchema"))
        output = ET.Element(f"{space}Output")
        model.insert(where + 1, output)
    for category, name in zip(schema.classes, schema.probability_fields, strict=True):
        if not name:
            ET.SubElement(output, f"{space}OutputField", name=probability_field(category), optype="continuous",
                          dataType="double", feature="probability", value=category)
    if space:
        ET.register_namespace("", space.strip("{}"))  # written as the default namespace, as it came
    return ET.tostring(root, encoding="utf-8")


def probability_field(category: str) -> str:
    """The name perfkit gives an OutputField it adds; JPMML's own writers use the same."""
    return f"probability({category})"


def summary(root: ET.Element, schema: PmmlSchema) -> list[tuple[str, str]]:
    """What `perfkit inspect` says of the document: its model, fields, target, and who wrote it."""
    model = model_element(root, "")
    segmentation = model.find("Segmentation")
    how = f"normalized by {model.get('normalizationMethod')}" if model.get("normalizationMethod") else ""
    if segmentation is not None:
        how = f"{len(segmentation.findall('Segment'))} segments combined by " \
              f"{segmentation.get('multipleModelMethod', '?')}"
    target = "none named" if schema.target is None else schema.target.name + (
        f": {len(schema.classes)} classes: {', '.join(schema.classes[:12])}" if schema.classes
        else f" ({schema.target.data_type})")
    return [("model", f"{schema.model_type} ({schema.function}{', ' + how if how else ''})"),
            ("inputs", ", ".join(f"{f.name} {f.data_type or '(not in the DataDictionary)'}" for f in schema.inputs)),
            ("target", target),
            ("PMML", schema.version + (f", written by {schema.producer}" if schema.producer else ""))]
