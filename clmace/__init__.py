"""clmace: ONNX inference on NumPy or any OpenCL device, with a baked compiled-program file."""

__version__ = "0.1.0"

from clmace.converter import convert  # noqa: E402
from clmace.session import InferenceSession, ModelMetadata, NodeArg  # noqa: E402

__all__ = ["InferenceSession", "ModelMetadata", "NodeArg", "convert", "__version__"]
