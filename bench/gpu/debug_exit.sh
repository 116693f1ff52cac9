python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>/dev/null
export PYTHONPATH=/tmp/site:$PWD OCL_ICD_VENDORS=/tmp/icd PYTHONUNBUFFERED=1
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd
echo "--- A: plain pyopencl program, exit"
python3 -X faulthandler -c "
import pyopencl as cl, numpy as np
ctx=cl.create_some_context(False); q=cl.CommandQueue(ctx)
b=cl.Buffer(ctx, cl.mem_flags.READ_WRITE, 1024)
print('ok A')"; echo "rc=$?"
echo "--- B: session, explicit cleanup"
python3 -X faulthandler -c "
import clmace, numpy as np, gc
s=clmace.InferenceSession('/tmp/models/mobilenet_v2.onnx', device='gpu', compiled_program=False)
s.run(None,{'input':np.zeros((1,3,224,224),np.float32)})
del s; gc.collect()
from clmace.runtime.opencl import device
for ctx,q in device._CONTEXTS.values(): q.finish()
device._CONTEXTS.clear(); gc.collect()
print('ok B')"; echo "rc=$?"
echo "--- C: session then onnxruntime"
python3 -X faulthandler -c "
import clmace, numpy as np
s=clmace.InferenceSession('/tmp/models/mobilenet_v2.onnx', device='gpu', compiled_program=False)
s.run(None,{'input':np.zeros((1,3,224,224),np.float32)})
print('run ok')
import onnxruntime as ort
o=ort.InferenceSession('/tmp/models/mobilenet_v2.onnx', providers=['CPUExecutionProvider'])
print('ort ok')
print(s.runtime.profile_run({'input':np.zeros((1,3,224,224),np.float32)})[:300])
import os; os._exit(0)
"; echo "rc=$?"
