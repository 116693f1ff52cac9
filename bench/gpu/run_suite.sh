#!/usr/bin/env bash
# The whole NVIDIA measurement in one device call (see bench/RESULTS.md): wheels, ICD registration, torchvision
# export + PyTorch baselines, clmace latency/accuracy, cold vs warm start, OpenCL tests on the GPU.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
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
    startup) for m in mobilenet_v2 resnet50; do python3 -m clmace convert "$MODELS/$m.onnx" -o "$MODELS/$m.clmace"; done
             python3 -m bench.bench_startup --models mobilenet_v2 resnet50 --model-dir "$MODELS" --device gpu \
               --repeat 3 --json "$OUT/startup.json"
             python3 -m bench.bench_startup --models mobilenet_v2 resnet50 --model-dir "$MODELS" --device gpu \
               --repeat 3 --driver-cache shared --json "$OUT/startup_driver_cache.json"
             python3 -m bench.bench_startup --models mobilenet_v2 resnet50 --model-dir "$MODELS" --device gpu \
               --repeat 3 --driver-cache clmace --json "$OUT/startup_clmace_cache.json" ;;
    tuning) python3 bench/bench_tuning.py --models "$MODELS"/mobilenet_v2.onnx "$MODELS"/resnet50.onnx --device gpu \
               --budget 60 --runs 100 --model-dir /tmp/tune --json "$OUT/tune.json" ;;
    tests) CLMACE_DEVICE=gpu timeout 240 python3 -m pytest -q -x tests/opencl tests/test_compiled_program.py 2>&1 | tail -15 ;;
    *) eval "$step" ;;
  esac
done
