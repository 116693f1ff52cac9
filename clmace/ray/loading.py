"""RowLoader: turns a column of file paths into a model input, in the worker: `.npy` files as they are,
images (PNG, JPEG, BMP, WebP, ...) resized to the input's height and width, scaled, normalised, laid out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from clmace.core.errors import ConfigError, ModelError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
FILE_SUFFIXES = (".npy", *IMAGE_SUFFIXES)


@dataclass(frozen=True)
class RowLoader:
    """How a path column becomes an input: size (height, width) defaults to the model's; pixels become
    (value * scale - mean) / std per channel; layout 'auto' reads NCHW or NHWC from where the input's
    channel count (1 or 3) sits."""

    column: str = "path"
    root: str = ""  # relative paths are taken from here
    size: tuple[int, int] | None = None
    scale: float = 1 / 255
    mean: Sequence[float] = (0.0,)
    std: Sequence[float] = (1.0,)
    layout: str = "auto"

    def load(self, paths: Sequence[Any], arg: Any) -> np.ndarray:
        """The stacked input for these paths (arg: the model input's ValueInfo)."""
        rows = [self._one(os.path.join(self.root, str(p)), arg) for p in paths]
        if not rows:
            return np.empty((0,), arg.dtype)
        return np.stack(rows).astype(arg.dtype, copy=False)

    def _one(self, path: str, arg: Any) -> np.ndarray:
        if path.lower().endswith(".npy"):
            value = np.load(path, allow_pickle=False)
            rank = len(arg.shape or ())
            return value[0] if rank and value.ndim == rank and value.shape[0] == 1 else value
        if not path.lower().endswith(IMAGE_SUFFIXES):
            raise ConfigError(f"{path}: not a .npy file or an image ({', '.join(IMAGE_SUFFIXES)})")
        layout, channels, (height, width) = self._geometry(arg)
        from PIL import Image

        try:
            with Image.open(path) as img:
                img = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
                pixels = np.asarray(img, np.float32).reshape(height, width, channels)
        except OSError as exc:
            raise ModelError(f"{path}: cannot read the image ({exc})") from exc
        pixels = (pixels * self.scale - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1) if layout == "NCHW" else pixels)

    def _geometry(self, arg: Any) -> tuple[str, int, tuple[int, int]]:
        """(layout, channels, (height, width)) of an image input."""
        shape = list(arg.shape or ())
        if len(shape) != 4:
            raise ConfigError(f"input {arg.name!r} has shape {shape}: images need a 4-D input (NCHW or NHWC)")
        layout = self.layout
        if layout == "auto":
            layout = "NCHW" if shape[1] in (1, 3) else "NHWC" if shape[3] in (1, 3) else ""
            if not layout:
                raise ConfigError(f"input {arg.name!r} {shape}: no channel axis of 1 or 3; give layout='NCHW'/'NHWC'")
        channels, spatial = (shape[1], shape[2:]) if layout == "NCHW" else (shape[3], shape[1:3])
        if self.size is not None:
            spatial = list(self.size)
        if not all(isinstance(d, int) and d > 0 for d in (*spatial, channels)):
            raise ConfigError(f"input {arg.name!r} {shape} has no fixed height, width and channels; give the size")
        return layout, int(channels), (int(spatial[0]), int(spatial[1]))
