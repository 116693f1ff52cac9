"""OpenCLRuntime behaviour: fallback and strict mode, memory plan, profiling, fp16, devices, program store."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import helper

from clmace import InferenceSession
from clmace.backends.opencl import OpenCLRuntime, list_devices
from clmace.backends.opencl import discovery as device
from clmace.core import drivers
from clmace.core.errors import DeviceError, ModelError, UnsupportedOpError
from clmace.frontend.convert import build_graph
from tests.opencl.conftest import compare, make_model, runtime_of


def fallback_model():
    """Relu -> Hardmax (no OpenCL kernel) -> Sigmoid."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Hardmax", ["a"], ["b"], axis=-1),
             helper.make_node("Sigmoid", ["b"], ["y"])]
    return make_model(nodes, [("x", [3, 5])], ["y"])


def test_fallback_warns_once_and_matches() -> None:
    """A node without a kernel runs on the host, with one warning naming it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = InferenceSession(fallback_model(), device="opencl")
    messages = [str(w.message) for w in caught if "host" in str(w.message)]
    assert len(messages) == 1 and "Hardmax" in messages[0]
    devices = runtime_of(sess).node_devices()
    assert sorted(devices.values()) == ["cpu", "opencl", "opencl"]
    compare(fallback_model(), expect_device=None)


def test_strict_raises() -> None:
    """strict=True refuses host fallback and lists the nodes."""
    with pytest.raises(UnsupportedOpError, match="Hardmax"):
        InferenceSession(fallback_model(), device="opencl", strict=True)


def test_intermediate_outputs_and_profile() -> None:
    """Intermediate values can be requested; profile_table reports every node."""
    sess = InferenceSession(fallback_model(), device="opencl", strict=False)
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, y = sess.run(["a", "y"], {"x": x})
    np.testing.assert_allclose(a, np.maximum(x, 0))
    with pytest.raises(ModelError, match="enable_profiling=True"):
        sess.profile_table()  # plain runs keep no events (their launches cost the host less)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sess = InferenceSession(fallback_model(), device="opencl", strict=False, enable_profiling=True)
        sess.run(["a", "y"], {"x": x})
    table = sess.profile_table()
    assert "end-to-end" in table and "Hardmax" in table and "Relu" in table


def test_memory_reuse_chain() -> None:
    """A long chain of same-sized tensors needs two buffers, not one per tensor."""
    nodes = [helper.make_node("Relu" if i % 2 else "Sigmoid", [f"t{i}"], [f"t{i + 1}"]) for i in range(10)]
    nodes[0].input[0] = "x"
    nodes[-1].output[0] = "y"
    graph, _ = build_graph(make_model(nodes, [("x", [64, 64])], ["y"]), run_passes=False)
    rt = OpenCLRuntime(graph, "opencl")
    tensor = 64 * 64 * 4
    assert rt.plan.live_bytes == 2 * tensor
    assert rt.plan.arena_bytes <= 2 * tensor + 4096


def test_fp16_refused_without_extension() -> None:
    """fp16 on a device without cl_khr_fp16 is a clear DeviceError (unless half storage is forced)."""
    chosen = device.describe(0, device.select_device("opencl"))
    if chosen.fp16:
        pytest.skip(f"{chosen.name} supports cl_khr_fp16")
    model = fallback_model()
    with pytest.raises(DeviceError, match="cl_khr_fp16"):
        InferenceSession(model, device="opencl", precision="fp16")


def conv_block():
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1], group=8),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["d"]),
             helper.make_node("GlobalAveragePool", ["d"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "w3"], ["y"], transB=1)]
    inits = [("w1", rng.standard_normal((8, 1, 3, 3)).astype(np.float32)),
             ("b1", rng.standard_normal(8).astype(np.float32)),
             ("w2", rng.standard_normal((16, 8, 1, 1)).astype(np.float32) * 0.3),
             ("w3", rng.standard_normal((10, 16)).astype(np.float32))]
    return make_model(nodes, [("x", [2, 8, 15, 17])], ["y"], inits)


def test_fp16_storage() -> None:
    """Half storage, float math: fp16 tolerances (forced on CPU devices without cl_khr_fp16)."""
    chosen = device.describe(0, device.select_device("opencl"))
    if not chosen.fp16 and chosen.type != "CPU":
        pytest.skip(f"{chosen.name} lacks cl_khr_fp16 (half storage is only forced on CPU devices here)")
    opts = {} if chosen.fp16 else {"fp16_without_extension": True}
    sess = compare(conv_block(), rtol=2e-2, atol=2e-2, precision="fp16", **opts)
    rt = runtime_of(sess)
    assert rt.plan.stored("r") == np.float16
    assert sess.run(None, {"x": np.zeros((2, 8, 15, 17), np.float32)})[0].dtype == np.float32


class DictCache:
    """A program cache in a dict: any object with the ProgramCache methods can back a device handle."""

    def __init__(self, programs: dict | None = None) -> None:
        self.programs, self.gets, self.puts, self.refused, self.tuned = dict(programs or {}), [], [], [], {}

    def get_program(self, device, key):
        self.gets.append(key)
        return self.programs.get((device.key(), key))

    def put_program(self, device, key, binary):
        self.puts.append(key)
        self.programs[(device.key(), key)] = binary()  # the handle hands over a function that reads it

    def refuse_program(self, device, key, reason):
        self.refused.append(reason)

    def get_tuned(self, device, key):
        return self.tuned.get((device.key(), key))

    def put_tuned(self, device, key, record):
        self.tuned[(device.key(), key)] = record


def test_program_cache_seam() -> None:
    """The device handle asks its cache once per distinct program and hands it what it compiled (bytes); a new
    cache holding those bytes serves every program, and the outputs are the same."""
    from clmace.core.program_cache import ProgramCache

    graph, _ = build_graph(conv_block())
    feeds = {v.name: np.linspace(-1, 1, int(np.prod(v.shape)), dtype=np.float32).reshape(v.shape)
             for v in graph.inputs}
    first = DictCache()
    assert isinstance(first, ProgramCache)
    rt = OpenCLRuntime(graph, "opencl", program_store=first)
    assert len(first.puts) == len(set(first.puts)) == rt.program_count() > 0
    assert all(k.name.endswith(".cl") and isinstance(b, bytes) and b for (_, k), b in first.programs.items())
    OpenCLRuntime(graph, "opencl", program_store=first)
    assert len(first.gets) == rt.program_count()  # the second plan reuses the handle's built programs
    second = DictCache(first.programs)
    warm = OpenCLRuntime(graph, "opencl", program_store=second)
    assert (second.puts, second.refused, len(second.gets)) == ([], [], rt.program_count())
    for a, b in zip(rt.run(feeds).values(), warm.run(feeds).values()):
        np.testing.assert_array_equal(a, b)


def test_program_binaries_read_through_ctypes_match_pyopencl() -> None:
    """The store reads binaries through ctypes (without the GIL): the same bytes pyopencl hands out."""
    import pyopencl as cl

    from clmace.backends.opencl import native
    from clmace.backends.opencl.device import shared_handle

    handle = shared_handle(device.select_device("opencl"))
    program = handle.program("eltwise.cl", {"OP_ADD": None, "RANK": 1})
    got = native.program_binary(program, handle.device)
    want = bytes(program.get_info(cl.program_info.BINARIES)[0])
    assert got is not None and len(got) > 0 and got == want


def test_list_and_select_devices() -> None:
    """Devices are listed with their capabilities; 'opencl:N' picks the N-th."""
    infos = list_devices()
    assert infos and all(i.compute_units > 0 and i.global_memory > 0 for i in infos)
    assert device.select_device("opencl:0").int_ptr == device.select_device(f"opencl:{infos[0].index}").int_ptr
    with pytest.raises(DeviceError, match="does not exist"):
        device.select_device(f"opencl:{len(infos)}")
    with pytest.raises(DeviceError, match="unknown"):
        device.select_device("cuda")


def test_nvidia_hint(monkeypatch) -> None:
    """A NVIDIA driver without a registered platform gets the exact fix in the error."""
    non_nvidia = [d for d in device._all_devices() if "NVIDIA" not in d.platform.name]
    monkeypatch.setattr(device, "_all_devices", lambda: non_nvidia)
    monkeypatch.setattr(drivers, "nvidia_opencl_installed", lambda: True)
    with pytest.raises(DeviceError, match="OCL_ICD_VENDORS") as err:
        device.select_device("gpu")
    assert "nvidia.icd" in str(err.value) and "libnvidia-opencl.so.1" in str(err.value)
    monkeypatch.setattr(device, "_all_devices", lambda: [])
    with pytest.raises(DeviceError, match="no OpenCL platform"):
        device.select_device("opencl")


def test_shape_chains_fold_once_shapes_are_known() -> None:
    """A Resize whose scales ONNX inference cannot see (computed in float from Shape) leaves the later
    Shape/Gather/Range/Cast without shapes at conversion; once the session knows the input shape and the dry
    run fills them, they fold away: only Resize and Add run, both on the device."""
    from onnx import TensorProto, helper

    from tests.opencl.conftest import compare, make_model, runtime_of

    nodes = [
        helper.make_node("Shape", ["x"], ["sx"]),
        helper.make_node("Cast", ["sx"], ["sx_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["sx_f", "sx_f"], ["ones"]),
        helper.make_node("Mul", ["ones", "two"], ["scales"]),
        helper.make_node("Resize", ["x", "", "scales"], ["up"], mode="nearest"),
        helper.make_node("Shape", ["up"], ["su"]),
        helper.make_node("Gather", ["su", "three"], ["w"], axis=0),
        helper.make_node("Range", ["zero", "w", "one"], ["idx"]),
        helper.make_node("Cast", ["idx"], ["idx_f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["up", "idx_f"], ["y"]),
    ]
    inits = [("two", np.array([1, 1, 2, 2], np.float32)), ("three", np.array(3, np.int64)),
             ("zero", np.array(0, np.int64)), ("one", np.array(1, np.int64))]
    model = make_model(nodes, [("x", ["batch", 3, 4, 5])], [("y", None)], inits)
    sess = compare(model, {"x": np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)})
    assert sorted(n.op_type for n in runtime_of(sess).plan.nodes) == ["Add", "Resize"]
