#!/usr/bin/env bash
# The whole NVIDIA measurement in one device call (see bench/RESULTS.md): wheels, ICD registration, torchvision
# export + PyTorch baselines, clmace latency/accuracy, cold vs warm start, OpenCL tests on the GPU.
set -uo pipefail
# Installed with their bytecode compiled, as pip does by default (start-up figures must not include compiling).
python3 -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
python3 -m compileall -q clmace bench >/dev/null
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd && export OCL_ICD_VENDORS=/tmp/icd
OUT=${OUT:-/tmp/out}; MODELS=/tmp/models; mkdir -p "$OUT" "$MODELS"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -m clmace devices | tee -a "$OUT/gpu.txt"
STEPS=${STEPS:-baseline latency startup tests}
for step in $STEPS; do
  echo "=== $step"
  case $step in
    baseline) env -u PYTHONPATH python3 bench/gpu/torchvision_baseline.py --out "$MODELS" --runs 200 && cp "$MODELS/torch_baseline.json" "$OUT/" ;;
    latency) python3 bench/gpu/clmace_gpu.py --models "$MODELS"/{mobilenet_v2,efficientnet_b0,resnet50}.onnx \
               --runs 200 --out "$OUT/clmace_gpu.json" ;;
    export) env -u PYTHONPATH python3 -c "
from pathlib import Path; import sys; sys.path.insert(0, 'bench/gpu')
from torchvision_baseline import export
for m in ('mobilenet_v2', 'resnet50'): export(m, Path('$MODELS'))" ;;
    startup) for m in mobilenet_v2 resnet50; do python3 -m clmace convert "$MODELS/$m.onnx" -o "$MODELS/$m.clmace"; done
             python3 -m bench.bench_startup --models mobilenet_v2 resnet50 --model-dir "$MODELS" --device gpu \
               --repeat 3 --json "$OUT/startup.json"
             python3 -m bench.bench_startup --models mobilenet_v2 resnet50 --model-dir "$MODELS" --device gpu \
               --repeat 3 --driver-cache shared --json "$OUT/startup_shared.json" ;;
    floor) python3 -m bench.startup_floor --device gpu --repeat 5 --json "$OUT/floor.json" ;;
    profile) bash bench/gpu/profile_start.sh "$MODELS/mobilenet_v2.clmace" 2>&1 | tee "$OUT/profile.txt" ;;
    tuning) python3 bench/bench_tuning.py --models "$MODELS"/mobilenet_v2.onnx "$MODELS"/resnet50.onnx --device gpu \
               --budget 60 --runs 100 --model-dir /tmp/tune --json "$OUT/tune.json" ;;
    tests) CLMACE_DEVICE=gpu timeout 240 python3 -m pytest -q -x tests/opencl tests/test_compiled_program.py 2>&1 | tail -15 ;;
    *) eval "$step" ;;
  esac
done
