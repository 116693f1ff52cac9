"""Error types raised by clmace; every message names the thing at fault."""


class ClmaceError(Exception):
    """Base class of every error clmace raises on purpose."""


class ModelError(ClmaceError, ValueError):
    """The model (ONNX or converted file) is malformed or inconsistent."""


class PlannedShapeError(ModelError):
    """A host node produced a shape its plan did not expect (its shape depends on input values)."""


class UnsupportedOpError(ModelError):
    """A node uses an op (or op version) that the chosen runtime does not implement."""


class ConfigError(ClmaceError, ValueError):
    """A deploy config is malformed, or does not match the model it names."""


class DeviceError(ClmaceError, RuntimeError):
    """No usable OpenCL device, or the device lacks a required feature."""


class ProgramFileError(ClmaceError):
    """A compiled-program file is damaged, foreign or unreadable."""
