"""ONNX -> IR conversion, graph passes, and the converted-model file."""
