#!/usr/bin/env bash
# Where does a warm start's time go on this device? cProfile of session creation and first run in a fresh
# process whose fresh CLMACE_CACHE_DIR holds only the compiled-program file another process baked.
set -u
M=${1:-/tmp/models/mobilenet_v2.clmace}
rm -rf /tmp/ps && mkdir -p /tmp/ps/bake /tmp/ps/warm
CLMACE_CACHE_DIR=/tmp/ps/bake python3 -c "import clmace; clmace.InferenceSession('$M', device='gpu')" 2>/dev/null
cp /tmp/ps/bake/compiled_programs.clmace /tmp/ps/warm/
CLMACE_CACHE_DIR=/tmp/ps/warm python3 -c "
import cProfile, pstats, time
t = time.perf_counter()
import numpy as np, clmace
t1 = time.perf_counter()
pr = cProfile.Profile(); pr.enable()
s = clmace.InferenceSession('$M', device='gpu')
t2 = time.perf_counter()
s.run(None, {s.get_inputs()[0].name: np.zeros((1, 3, 224, 224), np.float32)})
pr.disable()
print('import', round(t1 - t, 3), 'session', round(t2 - t1, 3), 'first run', round(time.perf_counter() - t2, 3),
      s.program_store.status()['hits'], 'hits')
pstats.Stats(pr).sort_stats('cumulative').print_stats(30)
pstats.Stats(pr).sort_stats('tottime').print_stats(15)" 2>&1 | grep -v '^$' | head -80
