"""Data-movement kernels (strided copies, index maps, Gather, Concat) against the NumPy runtime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from tests.opencl.conftest import compare, make_model

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
I64 = np.int64


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=5), seed=st.integers(0, 100))
def test_transpose(shape, seed) -> None:
    """Transpose by a random permutation: one strided copy."""
    perm = list(np.random.default_rng(seed).permutation(len(shape)))
    compare(make_model([helper.make_node("Transpose", ["x"], ["y"], perm=perm)], [("x", shape)], ["y"]))


@SETTINGS
@given(shape=st.lists(st.sampled_from([1, 3, 17, 33]), min_size=2, max_size=4), seed=st.integers(0, 100))
def test_long_rows_copy_and_select_by_rows(shape, seed) -> None:
    """Transpose, a Concat of slices and a broadcasting Where over shapes with rows of 16+ elements: those run
    one work-item per row element (-DROWS: a 2-D range) and match onnxruntime like the walk by element."""
    rng = np.random.default_rng(seed)
    perm = list(rng.permutation(len(shape)))
    cshape = [d if rng.random() < 0.5 else 1 for d in shape]
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=perm),
             helper.make_node("Concat", ["x", "x"], ["c"], axis=len(shape) - 2),
             helper.make_node("Where", ["m", "x", "b"], ["w"])]
    sess = compare(make_model(nodes, [("x", shape), ("m", cshape, TensorProto.BOOL), ("b", shape[-1:])],
                              ["t", "c", "w"]))
    by_rows = {s.kernel.function_name for s in sess.runtime.plan.steps if len(s.gws) == 2}
    if shape[-1] >= 16 and np.prod(shape[:-1]) > 1 and np.prod(cshape) < np.prod(shape):
        assert "where" in by_rows, by_rows
    if shape[-1] >= 16 and perm[-1] == len(shape) - 1 and [d for d in perm if shape[d] > 1] != sorted(
            d for d in perm if shape[d] > 1):
        assert "copy_nd" in by_rows, by_rows


@pytest.mark.parametrize("starts,ends,axes,steps", [([1], [4], [1], [1]), ([0, 5], [2, 0], [0, 1], [1, -2]),
                                                    ([-3], [100], [2], [2]), ([3, 1], [0, 3], [2, 0], [-1, 1])])
def test_slice(starts, ends, axes, steps) -> None:
    """Slice with negative starts, clamped ends and negative steps."""
    inits = [(n, np.array(v, I64)) for n, v in (("s", starts), ("e", ends), ("a", axes), ("p", steps))]
    compare(make_model([helper.make_node("Slice", ["x", "s", "e", "a", "p"], ["y"])], [("x", [3, 6, 5])], ["y"],
                       inits))


def test_concat_split() -> None:
    """Concat on a middle axis, then Split with uneven parts (int64 data too)."""
    nodes = [helper.make_node("Concat", ["a", "b", "c"], ["y"], axis=1),
             helper.make_node("Split", ["y", "parts"], ["p", "q"], axis=1)]
    compare(make_model(nodes, [("a", [2, 3, 4]), ("b", [2, 1, 4]), ("c", [2, 5, 4])], ["y", "p", "q"],
                       [("parts", np.array([2, 7], I64))]))
    node = helper.make_node("Concat", ["a", "b"], ["y"], axis=0)
    compare(make_model([node], [("a", [2, 3], TensorProto.INT64), ("b", [1, 3], TensorProto.INT64)], ["y"]))


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad(mode) -> None:
    """Pad in every mode, constant with a non-zero value and a negative (cropping) pad."""
    pads = np.array([0, 1, 2, 1, 0, 2, -1, 3], I64) if mode == "constant" else np.array([0, 1, 2, 1, 0, 2, 1, 2], I64)
    inits = [("pads", pads), ("v", np.array(1.5, np.float32))]
    compare(make_model([helper.make_node("Pad", ["x", "pads", "v"], ["y"], mode=mode)], [("x", [2, 3, 4, 5])], ["y"],
                       inits, opset=19))


def test_gather() -> None:
    """Gather with constant indices (planned as a copy) and run-time indices (the gather kernel)."""
    compare(make_model([helper.make_node("Gather", ["x", "i"], ["y"], axis=1)], [("x", [3, 5, 2])], ["y"],
                       [("i", np.array([[4, 0], [-1, 2]], I64))]))
    model = make_model([helper.make_node("Gather", ["x", "i"], ["y"], axis=0)],
                       [("x", [6, 4]), ("i", [5], TensorProto.INT64)], ["y"])
    rng = np.random.default_rng(0)
    compare(model, {"x": rng.standard_normal((6, 4)).astype(np.float32), "i": np.array([0, 5, -2, 3, 3], I64)})


def test_expand_tile_depth_to_space() -> None:
    """Expand, Tile and DepthToSpace, planned from the reference op."""
    compare(make_model([helper.make_node("Expand", ["x", "s"], ["y"])], [("x", [3, 1])], ["y"],
                       [("s", np.array([2, 3, 4], I64))]))
    compare(make_model([helper.make_node("Tile", ["x", "r"], ["y"])], [("x", [2, 3])], ["y"],
                       [("r", np.array([2, 2], I64))]))
    compare(make_model([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD")],
                       [("x", [1, 8, 2, 3])], ["y"]))


def test_resize_nearest() -> None:
    """Resize by scales runs on the device, nearest (a gather) and linear (weighted taps) alike."""
    scales = ("sc", np.array([1, 1, 2, 1.5], np.float32))
    node = helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="nearest")
    compare(make_model([node], [("x", [1, 2, 3, 4])], ["y"], [scales]))
    node = helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear")
    compare(make_model([node], [("x", [1, 2, 3, 4])], ["y"], [scales]))


def test_views_do_not_copy() -> None:
    """Reshape / Flatten / Squeeze / Unsqueeze / Identity alias their input: no launch, shared storage."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["a"]),
             helper.make_node("Unsqueeze", ["a", "ax"], ["b"]),
             helper.make_node("Squeeze", ["b", "ax"], ["c"]),
             helper.make_node("Flatten", ["c"], ["d"], axis=1),
             helper.make_node("Identity", ["d"], ["e"]),
             helper.make_node("Sigmoid", ["e"], ["y"])]
    model = make_model(nodes, [("x", [2, 3, 4])], ["y"], [("shape", np.array([6, 4], I64)), ("ax", np.array([0], I64))])
    from clmace import InferenceSession
    from clmace.backends.opencl import OpenCLRuntime
    from clmace.frontend.convert import build_graph

    graph, _ = build_graph(model, run_passes=False)
    rt = OpenCLRuntime(graph, "opencl")
    devices = rt.node_devices()
    assert [devices[n.name] for n in graph.nodes].count("view") == 5
    assert len(rt.plan.steps) == 2
    assert rt.plan.buf("r").int_ptr == rt.plan.buf("e").int_ptr
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    want = InferenceSession(model, device="cpu").run(None, {"x": x})[0]
    np.testing.assert_allclose(rt.run({"x": x})["y"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("coord", ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                   "asymmetric", "tf_crop_and_resize"])
def test_resize_interpolation_on_the_device(mode, coord) -> None:
    """Linear and cubic Resize in every coordinate mode, up and down, on the device (matches NumPy, whose
    Resize the node suite checks against the ONNX reference)."""
    import numpy as np

    rng = np.random.default_rng(4)
    for scales, antialias in (([1, 1, 2.0, 1.5], 0), ([1, 1, 0.6, 0.75], 1)):
        inits = [("roi", np.array([0, 0, 0.1, 0.2, 1, 1, 0.9, 0.7], np.float32)),
                 ("scales", np.array(scales, np.float32))]
        node = helper.make_node("Resize", ["x", "roi", "scales"], ["y"], mode=mode, antialias=antialias,
                                coordinate_transformation_mode=coord, extrapolation_value=-1.0)
        model = make_model([node], [("x", [1, 2, 9, 8])], ["y"], inits, opset=18)
        compare(model, {"x": rng.standard_normal((1, 2, 9, 8)).astype(np.float32)})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements_with_run_time_indices(axis) -> None:
    """ScatterElements (no reduction): indices from an input, negative ones counting from the end."""
    rng = np.random.default_rng(axis + 3)
    data = rng.standard_normal((4, 5, 6)).astype(np.float32)
    ishape = [2, 3, 6] if axis != -1 else [4, 5, 2]
    dim = data.shape[axis]
    # distinct targets along the axis per position (duplicates are undefined in ONNX)
    idx = np.stack([rng.permutation(dim)[:ishape[axis]] for _ in range(int(np.prod(ishape)) // ishape[axis])])
    idx = np.moveaxis(idx.reshape([*(s for i, s in enumerate(ishape) if i != axis % 3), ishape[axis]]), -1, axis)
    idx = np.where(rng.random(idx.shape) < 0.3, idx - dim, idx).astype(np.int64)
    model = make_model([helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=axis)],
                       [("x", [4, 5, 6]), ("i", ishape, TensorProto.INT64), ("u", ishape)], ["y"])
    compare(model, {"x": data, "i": idx, "u": rng.standard_normal(ishape).astype(np.float32)})


@pytest.mark.parametrize("ishape", [[3, 1], [2, 2], [2, 3]])
def test_scatter_nd_with_run_time_indices(ishape) -> None:
    """ScatterND: rows (k=1), sub-blocks (k=2) and single elements (k=3), some indices negative."""
    rng = np.random.default_rng(sum(ishape))
    shape = (4, 3, 5)
    k = ishape[-1]
    flat = rng.choice(int(np.prod(shape[:k])), ishape[0], replace=False)
    idx = np.stack(np.unravel_index(flat, shape[:k]), -1).astype(np.int64)
    idx[0] -= np.array(shape[:k])
    ushape = [ishape[0], *shape[k:]]
    model = make_model([helper.make_node("ScatterND", ["x", "i", "u"], ["y"])],
                       [("x", list(shape)), ("i", ishape, TensorProto.INT64), ("u", ushape)], ["y"])
    compare(model, {"x": rng.standard_normal(shape).astype(np.float32), "i": idx,
                    "u": rng.standard_normal(ushape).astype(np.float32)})


@pytest.mark.parametrize("axis,elem", [(-1, TensorProto.INT64), (0, TensorProto.INT32), (1, TensorProto.FLOAT)])
def test_one_hot(axis, elem) -> None:
    """OneHot at several axes, negative and out-of-range indices, integer and float indices."""
    idx = np.array([[0, 3, -1], [4, 7, -5]])
    dtype = {TensorProto.INT64: np.int64, TensorProto.INT32: np.int32, TensorProto.FLOAT: np.float32}[elem]
    model = make_model([helper.make_node("OneHot", ["i", "depth", "values"], ["y"], axis=axis)],
                       [("i", [2, 3], elem)], ["y"],
                       [("depth", np.array(5, np.int64)), ("values", np.array([-2.0, 3.0], np.float32))])
    compare(model, {"i": idx.astype(dtype)})


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd"])
@pytest.mark.parametrize("elem", [TensorProto.INT32, TensorProto.INT64])
def test_integer_reductions(op, elem) -> None:
    """Integer reductions are exact in their own type (no float round trip: 2**40 + 1 survives)."""
    dtype = np.int32 if elem == TensorProto.INT32 else np.int64
    rng = np.random.default_rng(5)
    x = rng.integers(-9, 9, (3, 4, 5)).astype(dtype)
    if dtype == np.int64 and op in ("ReduceMax", "ReduceSum"):
        x[1, 2, 3] = 2**40 + 1
    model = make_model([helper.make_node(op, ["x", "axes"], ["y"], keepdims=0)], [("x", [3, 4, 5], elem)], ["y"],
                       [("axes", np.array([0, 2], np.int64))], opset=18)
    compare(model, {"x": x})
