"""Inputs for tools/fuzz_readers.py: valid seed files, structured random files, byte-level mutations.

Everything is driven by a `random.Random`, so an input is reproducible from (seed, target, index).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import random
import struct
import tempfile
import zlib
from collections.abc import Callable

import numpy as np

# ---------------------------------------------------------------- valid seed files


def _private_key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # fixed: runs are reproducible


def _signer() -> Callable[[bytes], bytes]:
    from clmace.store import signing

    return signing.signer(_private_key())


_KEY_PATH: list[str] = []


def public_key_path() -> str:
    """The seed files' public key as a PEM file (made once per process), so inspect verifies signatures."""
    if not _KEY_PATH:
        from cryptography.hazmat.primitives import serialization

        fd, path = tempfile.mkstemp(suffix=".pub")
        with os.fdopen(fd, "wb") as f:
            f.write(_private_key().public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
        atexit.register(os.unlink, path)
        _KEY_PATH.append(path)
    return _KEY_PATH[0]


def program_seeds() -> list[bytes]:
    """Valid compiled-program files: two devices, driver blobs, tuned records; one signed, one with a big binary."""
    from clmace.core.fingerprint import DeviceFingerprint
    from clmace.store.format import ProgramEntry, ProgramFile, Section, dumps, entry_key, source_hash

    fps = [DeviceFingerprint("Portable Computing Language", "The pocl project", "OpenCL 3.0 PoCL 3.1",
                             "cpu-x86-64", "AuthenticAMD", "OpenCL 3.0 PoCL", "3.1", "OpenCL C 1.2 PoCL", 64),
           DeviceFingerprint("NVIDIA CUDA", "NVIDIA Corporation", "OpenCL 3.0 CUDA 13.0", "NVIDIA H200",
                             "NVIDIA Corporation", "OpenCL 3.0 CUDA", "580.65", "OpenCL C 1.2 ", 64)]
    rng = random.Random(7)
    sections = {}
    for fp in fps:
        entries = {}
        for k in range(3):
            src = f"__kernel void k{k}(__global float *a) {{ a[0] = {k}; }}"
            blobs = {f"AB/CDEFGH/k{k}/64-1-1-goffs0-smallgrid/k{k}.so": rng.randbytes(64)} if k == 1 else {}
            entries[entry_key(src, ["-DX"])] = ProgramEntry(f"k{k}", "-DX", source_hash(src),
                                                            b"poclbin\0" + rng.randbytes(300), blobs)
        sections[fp.key()] = Section(fp, entries, {"conv_1_8_8_4": {"lws": [4, 8, 1], "ms": 0.5}})
    small = ProgramFile("0.1.0", 1.7e9, sections)
    big_fp = fps[0]
    big = ProgramFile("0.1.0", 1.7e9, {big_fp.key(): Section(big_fp, {entry_key("big", []): ProgramEntry(
        "big", "", source_hash("big"), rng.randbytes(200_000))})})
    return [dumps(small), dumps(small, signer=_signer()), dumps(ProgramFile("0.1.0", 0.0)), dumps(big)]


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _pb_len(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def mace_file(pairs: list[tuple[bytes, bytes, list[int]]], layout: str) -> bytes:
    """A MACE file in the legacy (int64 count, int32-length key/value) or protobuf (+ CRC32) layout."""
    if layout == "legacy":
        return struct.pack("<q", len(pairs)) + b"".join(
            struct.pack("<i", len(k)) + k + struct.pack("<i", len(v)) + v for k, v, _ in pairs)
    body = b"".join(_pb_len(1, _pb_len(1, k) + (_pb_len(2, v) if v else b"")
                            + b"".join(varint(3 << 3) + varint(u) for u in ints)) for k, v, ints in pairs)
    return body + struct.pack("<I", zlib.crc32(body))


def mace_seeds() -> list[bytes]:
    """Valid MACE files in both layouts, Adreno-like platform info, one with a big binary."""
    key = b"conv_2d_1x1 -DBIAS -DCMD_DATA_TYPE=f -DDATA_TYPE=float -Dconv_2d_1x1=conv_2d_1x1_1"
    pairs = [(key, b"\x7fELF\x01\x01\x01" + bytes(9) + b"\x02\x00\xf3\x00QCOM" + bytes(120), []),
             (b"program_hash_ " + key, b"8f14e45fceea167a", []),
             (b"mace_opencl_precompiled_platform_info_key",
              b"QUALCOMM Snapdragon(TM), FULL_PROFILE, OpenCL 2.0 QUALCOMM build: commit #3dad7f8, v0.12.0", []),
             (b"mace_opencl_precompiled_device_name_key", b"Adreno(TM) 640", []),
             (b"conv2d_1x1_opencl_kernel_1_112_112_32", b"", [4, 8, 1, 300])]
    big = [(b"pooling", random.Random(3).randbytes(200_000), [])]
    return [mace_file(pairs, "legacy"), mace_file(pairs, "protobuf"), mace_file(big, "protobuf")]


def model_seeds() -> list[bytes]:
    """Valid converted-model files: a small conv graph with an ndarray attribute, and one with big weights."""
    from clmace.core.ir import Graph, Node, ValueInfo
    from clmace.frontend.modelfile import dumps

    f32 = np.dtype("float32")
    rng = np.random.default_rng(0)
    nodes = [Node("conv", "Conv", ["x", "w", "b"], ["y"], {"strides": [1, 1], "pads": [1, 1, 1, 1]}),
             Node("relu", "Relu", ["y"], ["z"], {"activation_params": np.arange(3, dtype=np.int64)})]
    values = {"y": ValueInfo("y", f32, (1, 4, 8, 8)), "z": ValueInfo("z", f32, ("batch", 4, 8, 8))}
    seeds = []
    for channels in (4, 512):
        inits = {"w": rng.standard_normal((channels, 3, 3, 3)).astype(f32), "b": np.zeros(channels, f32)}
        graph = Graph(nodes, [ValueInfo("x", f32, (1, 3, 8, 8))], [ValueInfo("z", f32, None)], inits, 17,
                      values, "tiny", {"producer": "fuzz"})
        seeds.append(dumps(graph, {"passes": ["fold"]}))
    return seeds


def all_seeds() -> dict[str, list[bytes]]:
    """Seed files per target ('inspect' reads both compiled-program and MACE files)."""
    program, mace_ = program_seeds(), mace_seeds()
    return {"program": program, "inspect": program + mace_, "mace": mace_, "model": model_seeds()}


# ---------------------------------------------------------------- structured random files


def _rstr(rng: random.Random) -> bytes:
    pick = rng.random()
    if pick < 0.6:
        return rng.choice([b"", b"conv2d", b"-DBIAS -DRELU", "\u00e9\u4e2d".encode(), b"x" * rng.randrange(200)])
    if pick < 0.9:
        return hashlib.sha256(rng.randbytes(4)).hexdigest().encode()
    return rng.randbytes(rng.randrange(12))  # often invalid UTF-8


def _rjson(rng: random.Random) -> bytes:
    return rng.choice([b"{}", b'{"lws":[4,8,1]}', b"[1,2]", b"null", b"{", b'{"a":NaN}', b"1" * 5000,
                       b"[" * rng.randrange(1, 5000) + b"]" * rng.randrange(5000), b'{"a":' * 3000,
                       json.dumps({"k": "v" * rng.randrange(100)}).encode(), rng.randbytes(8)])


def _l(rng: random.Random, payload: bytes) -> bytes:
    """u32 length + payload; one time in 100 the length is wrong."""
    n = len(payload) if rng.random() > 0.01 else rng.choice([0, len(payload) + 1, 2**32 - 1, rng.randrange(2**32)])
    return struct.pack("<I", n % 2**32) + payload


def random_program(rng: random.Random) -> bytes:
    """A compiled-program file built field by field with random contents, mostly-correct lengths and CRCs."""
    head = struct.pack("<8sIId", b"CLMACEPF", rng.choice([1, 1, 1, 0, 2]), rng.choice([0, 0, 1, 2, 1 << 31]),
                       rng.choice([1.7e9, 0.0, float("nan"), float("inf"), -1e308]))
    parts = [head, _l(rng, _rstr(rng))]
    nsec = rng.choice([0, 1, 1, 2, 3])
    parts.append(struct.pack("<I", nsec if rng.random() > 0.05 else rng.randrange(2**32)))
    for _ in range(nsec):
        sec = [_l(rng, _rstr(rng)) for _ in range(8)]
        nent = rng.randrange(4)
        sec.append(struct.pack("<II", rng.choice([32, 64]), nent))
        for _ in range(nent):
            key = hashlib.sha256(rng.randbytes(4)).hexdigest().encode() if rng.random() < 0.8 else _rstr(rng)
            body = [_l(rng, key), *(_l(rng, _rstr(rng)) for _ in range(3)), _l(rng, rng.randbytes(rng.randrange(300)))]
            nblob = rng.randrange(3)
            body.append(struct.pack("<I", nblob))
            for _ in range(nblob):
                path = rng.choice([b"AB/CD/k/1-1-1/k.so", b"../../etc/x", b"/abs", b"a//b", b"a\\b", b"", b"."])
                body += [_l(rng, path), _l(rng, rng.randbytes(rng.randrange(40)))]
            raw = b"".join(body)
            crc = zlib.crc32(raw) if rng.random() > 0.05 else rng.randrange(2**32)
            sec += [_l(rng, raw), struct.pack("<I", crc)]
        ntuned = rng.randrange(3)
        sec.append(struct.pack("<I", ntuned))
        for _ in range(ntuned):
            sec += [_l(rng, _rstr(rng)), _l(rng, _rjson(rng))]
        parts.append(_l(rng, b"".join(sec)))
    if rng.random() < 0.3:
        parts.append(_l(rng, rng.randbytes(rng.choice([0, 64, 100]))))
    data = b"".join(parts)
    return data + struct.pack("<I", zlib.crc32(data) if rng.random() > 0.1 else rng.randrange(2**32))


def random_mace(rng: random.Random) -> bytes:
    """A MACE file with random pairs, or a protobuf soup of random tags and wire types, CRC mostly right."""
    if rng.random() < 0.5:
        pairs = [(_rstr(rng), rng.randbytes(rng.randrange(100)),
                  [rng.randrange(2**32) for _ in range(rng.randrange(5))]) for _ in range(rng.randrange(6))]
        return mace_file(pairs, rng.choice(["legacy", "protobuf"]))
    fields = []
    for _ in range(rng.randrange(1, 12)):
        number, wire = rng.choice([1, 1, 2, 3, 0, 7, 2**29 - 1]), rng.choice([0, 1, 2, 2, 3, 4, 5, 6, 7])
        tag = varint(number << 3 | wire)
        inner = rng.choice([b"", _pb_len(1, _rstr(rng)), _pb_len(3, varint(rng.randrange(2**40)) * 40),
                            varint(3 << 3) + b"\xff" * rng.randrange(12), rng.randbytes(rng.randrange(20))])
        fields.append(tag + rng.choice([varint(len(inner)), varint(rng.randrange(2**64))]) + inner)
    body = b"".join(fields)
    return body + struct.pack("<I", zlib.crc32(body) if rng.random() > 0.2 else rng.randrange(2**32))


def _rvalue(rng: random.Random) -> object:
    depth = rng.choice([1, 2, 5000])
    nested: object = []
    for _ in range(depth - 1):
        nested = [nested]
    return rng.choice([None, True, -1, 0, 2**70, 1.5, float("nan"), "", "<f4", "O", "V0", "(1000000,1000000)f8",
                       "x" * 50, [], [1, 2], [[1]], {}, {"__ndarray__": "AAAA", "dtype": "<f4", "shape": [1]},
                       {"names": ["a"], "formats": ["<f4"]}, nested, [-1], [2**62, 2**62]])


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON tree (dict keys and list indexes) down to depth 30, parents before children."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    out: list[tuple] = []
    if len(prefix) > 30:
        return out
    for key, child in items:
        out.append((*prefix, key))
        out += _paths(child, (*prefix, key))
    return out


def _mutate_json(rng: random.Random, root: dict) -> dict:
    """Replace or drop the value at one random place of a JSON tree (every place equally likely)."""
    paths = _paths(root)
    if not paths:
        return root
    *parent_path, key = rng.choice(paths)
    parent = root
    for k in parent_path:
        parent = parent[k]
    if isinstance(parent, dict) and rng.random() < 0.15:
        del parent[key]
    else:
        parent[key] = _rvalue(rng)
    return root


def random_model(rng: random.Random, seed: bytes) -> bytes:
    """A converted-model file whose JSON header had values replaced by odd ones; lengths and SHA-256 kept right."""
    (head_len,) = struct.unpack_from("<I", seed, 12)
    header = json.loads(seed[16:16 + head_len])
    start = 16 + head_len + (-(16 + head_len)) % 64
    blob = seed[start:]
    for _ in range(rng.randrange(1, 4)):
        header = _mutate_json(rng, header)
    try:
        head = json.dumps(header, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        head = b"[" * 5000
    prefix = struct.pack("<8sII", b"CLMACEMD", 1, len(head))
    return prefix + head + b" " * ((-(len(prefix) + len(head))) % 64) + blob


# ---------------------------------------------------------------- byte-level mutations


def _length_field(rng: random.Random, data: bytes) -> bytes:
    """Overwrite a u32 that looks like a length or count (smaller than the file) with an awkward value."""
    if len(data) < 4:
        return data
    spots = [p for p in (rng.randrange(len(data) - 3) for _ in range(32))
             if struct.unpack_from("<I", data, p)[0] < len(data)] or [rng.randrange(len(data) - 3)]
    pos = rng.choice(spots)
    (old,) = struct.unpack_from("<I", data, pos)
    new = rng.choice([0, 1, old + 1, old - 1, old * 2, len(data), 2**31 - 1, 2**31, 2**32 - 1, rng.randrange(2**32)])
    return data[:pos] + struct.pack("<I", new % 2**32) + data[pos + 4:]


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """One random mutation: bit flips, insert, delete, truncate, length field, splice with another file."""
    kind = rng.randrange(6)
    n = len(data)
    if kind == 0 and n:
        out = bytearray(data)
        for _ in range(rng.choice([1, 1, 2, 8])):
            out[rng.randrange(n)] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 1:
        pos = rng.randrange(n + 1)
        return data[:pos] + rng.choice([rng.randbytes(rng.randrange(1, 17)), b"\xff" * 4, b"\0" * 4]) + data[pos:]
    if kind == 2 and n:
        pos = rng.randrange(n)
        return data[:pos] + data[pos + rng.randrange(1, 17):]
    if kind == 3:
        return data[:rng.randrange(n + 1)]
    if kind == 4:
        return _length_field(rng, data)
    other = rng.choice(others)
    return data[:rng.randrange(n + 1)] + other[rng.randrange(len(other) + 1):]


def fix_crc(data: bytes) -> bytes:
    """Recompute a trailing CRC32 so a mutation gets past the checksum into the structure checks."""
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4])) if len(data) >= 4 else data


def fix_entry_crcs(data: bytes) -> bytes:
    """Recompute every entry CRC of a compiled-program file, as far as its lengths can be followed."""
    out = bytearray(data)

    def u32(pos: int) -> int:
        return struct.unpack_from("<I", out, pos)[0] if pos + 4 <= len(out) else -1

    try:
        pos = 24 + 4 + u32(24) + 4  # header, engine version, section count
        while 0 <= pos < len(out) - 4:
            end = pos + 4 + u32(pos)
            pos += 4
            for _ in range(8):
                pos += 4 + u32(pos)
            count, pos = u32(pos + 4), pos + 8
            for _ in range(max(count, 0)):
                size = u32(pos)
                if size < 0 or pos + 8 + size > len(out):
                    return bytes(out)
                struct.pack_into("<I", out, pos + 4 + size, zlib.crc32(out[pos + 4:pos + 4 + size]))
                pos += 8 + size
            pos = end
    except struct.error:
        pass
    return bytes(out)


def make_input(target: str, index: int, seed: int, seeds: dict[str, list[bytes]]) -> bytes:
    """The `index`-th input for `target` under `seed` (deterministic)."""
    rng = random.Random(f"{seed}:{target}:{index}")
    everything = [s for group in seeds.values() for s in group]
    pick = rng.random()
    if pick < 0.08:
        return rng.randbytes(rng.choice([0, 1, 7, 24, 100, 1000, 4096]))
    if pick < (0.6 if target == "model" else 0.35):
        if target == "model":
            return random_model(rng, seeds["model"][0])
        if target == "mace" or (target == "inspect" and rng.random() < 0.4):
            return random_mace(rng)
        return random_program(rng)
    data = rng.choice(seeds[target])
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data = mutate(rng, data, everything)
    if target != "model" and rng.random() < 0.5:
        data = fix_crc(fix_entry_crcs(data) if data.startswith(b"CLMACEPF") else data)
    return data
