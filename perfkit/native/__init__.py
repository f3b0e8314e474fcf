"""Everything about non-ONNX models: which framework a file belongs to, `perfkit inspect`, MLflow folders,
the exporters to ONNX, the cached conversion, and the parity of a conversion with its native model."""
