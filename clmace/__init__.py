"""clmace: ONNX inference on NumPy or any OpenCL device, with a baked compiled-program file."""

__version__ = "0.1.0"

from clmace.options import SessionOptions  # noqa: E402
from clmace.session import InferenceSession, ModelMetadata, NodeArg  # noqa: E402


def convert(model, output, input_shapes=None) -> dict:  # noqa: ANN001 - documented in clmace.frontend.convert
    """Convert an ONNX model to a converted-model file (see clmace.frontend.convert.convert)."""
    from clmace.frontend.convert import convert as _convert  # imports onnx, so only when converting

    return _convert(model, output, input_shapes)

__all__ = ["InferenceSession", "ModelMetadata", "NodeArg", "SessionOptions", "convert", "__version__"]
