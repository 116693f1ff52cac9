#!/usr/bin/env bash
# Where does a warm start's time go on this device? cProfile of session creation with only the file present,
# with the CUDA JIT cache disabled and then enabled.
set -u
M=${1:-/tmp/models/mobilenet_v2.onnx}
rm -rf /tmp/ps && mkdir -p /tmp/ps/a /tmp/ps/b /tmp/ps/c
CLMACE_CACHE_DIR=/tmp/ps/a CUDA_CACHE_DISABLE=1 python3 -c "import clmace; clmace.InferenceSession('$M', device='gpu')" 2>/dev/null
cp /tmp/ps/a/compiled_programs.clmace /tmp/ps/b/
for mode in "CUDA_CACHE_DISABLE=1" "CUDA_CACHE_PATH=/tmp/ps/cuda" "CUDA_CACHE_PATH=/tmp/ps/cuda"; do
  echo "--- warm, $mode"
  env $mode CLMACE_CACHE_DIR=/tmp/ps/b python3 -c "
import cProfile, pstats, time
t=time.perf_counter(); import clmace; t1=time.perf_counter()
cProfile.run(\"s=clmace.InferenceSession('$M', device='gpu')\", '/tmp/ps/prof')
print('import', round(t1-t, 3), 'session', round(time.perf_counter()-t1, 3), s.program_store.status()['hits'], 'hits')
pstats.Stats('/tmp/ps/prof').sort_stats('cumulative').print_stats(14)" 2>&1 | grep -v "^$" | head -30
done
