"""The `clmace` command line: parsing and printing only; the engine lives elsewhere."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from clmace.cli.args import shape_arg
from clmace.cli.batch import EXAMPLE as BATCH_EXAMPLE
from clmace.cli.batch import register as register_batch
from clmace.cli.tune import EXAMPLE as TUNE_EXAMPLE
from clmace.cli.tune import add_tune_arguments, cmd_tune, run_tuning
from clmace.cli.workflow import register as register_workflow
from clmace.core.errors import ClmaceError

EXAMPLES = {
    "devices": "clmace devices",
    "compile": "clmace compile model.clmace --device opencl -o model.bin --input-shape input=1,3,224,224\n"
               "  clmace compile model.onnx --device gpu -o model.bin --tune --budget 300",
    "tune": TUNE_EXAMPLE,
    "inspect": "clmace inspect model.bin\n  clmace inspect mace_cl_compiled_program.bin --json",
    "cache": "clmace cache list\n  clmace cache prune",
    "keygen": "clmace keygen signing.pem signing.pub\n"
              "  clmace compile model.clmace -o model.bin --sign-key signing.pem",
    "convert": "clmace convert model.onnx -o model.clmace --input-shape input=1,3,224,224\n"
               "  clmace convert --config deploy.yml -o build/",
    "info": "clmace info model.clmace\n  clmace info model.onnx --json",
    "batch": BATCH_EXAMPLE,
    "ops": "clmace ops\n  clmace ops --suite --device opencl --op LSTM --op If",
    "run": "clmace run model.clmace --input input=random --out outputs/\n"
           "  clmace run model.onnx --input input=image.npy --device opencl --profile",
}


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert ONNX (or every model of a deploy config) to converted-model files."""
    from clmace.frontend.convert import convert
    from clmace.workflow.config import load_config

    jobs = []
    if args.config:
        out_dir = args.output or "."
        for cfg in load_config(args.config):
            cfg.verify_checksum()
            jobs.append((cfg.model_file_path, os.path.join(out_dir, f"{cfg.name}.clmace"), cfg.input_shapes()))
    elif args.model:
        output = args.output or os.path.splitext(args.model)[0] + ".clmace"
        jobs.append((args.model, output, shape_arg(args.input_shape)))
    else:
        raise ClmaceError("convert needs a MODEL or --config FILE")
    for model, output, shapes in jobs:
        start = time.perf_counter()
        report = convert(model, output, shapes or None)
        print(f"{model} -> {output}: {report['nodes_before']} nodes -> {report['nodes_after']} after passes "
              f"({time.perf_counter() - start:.2f} s)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print inputs, outputs, op histogram, parameters and FLOPs of a model."""
    from clmace.workflow.info import model_info, render_info

    info = model_info(args.model, shape_arg(args.input_shape))
    print(json.dumps(info, indent=2) if args.json else render_info(info))
    return 0


def _feed(spec: str, inputs: dict, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    name, eq, source = spec.partition("=")
    if name not in inputs:
        hint = " (the syntax is NAME=file.npy or NAME=random)" if not eq else ""
        raise ClmaceError(f"--input {spec!r}: the model has no input {name!r}{hint}; inputs: {sorted(inputs)}")
    info = inputs[name]
    if source not in ("", "random"):
        try:
            return name, np.load(source)
        except OSError as e:
            raise ClmaceError(f"--input {spec!r}: cannot read {source!r} ({e.strerror or e}); expected a .npy file "
                              "written by numpy.save") from e
    if not info.is_static():
        raise ClmaceError(f"input {name!r} has dynamic shape {info.shape}; pass --input-shape")
    if info.dtype.kind == "f":
        return name, rng.standard_normal(info.shape).astype(info.dtype)
    return name, rng.integers(0, 2 if info.dtype.kind == "b" else 10, info.shape).astype(info.dtype)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a model once (or --repeat times) and print/save its outputs."""
    from clmace.session import InferenceSession

    start = time.perf_counter()
    sess = InferenceSession(args.model, device=args.device, input_shapes=shape_arg(args.input_shape) or None,
                            precision=args.precision, enable_profiling=bool(args.profile))
    created = time.perf_counter() - start
    inputs = {v.name: v for v in sess.graph.inputs}
    rng = np.random.default_rng(args.seed)
    specs = args.input or [f"{name}=random" for name in inputs]
    feeds = dict(_feed(spec, inputs, rng) for spec in specs)
    times = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        outputs = sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    print(f"session {created * 1e3:.1f} ms on {sess.device}; first run {times[0] * 1e3:.2f} ms"
          + (f"; median of {len(times) - 1} more {np.median(times[1:]) * 1e3:.2f} ms" if len(times) > 1 else ""))
    for meta, arr in zip(sess.get_outputs(), outputs):
        summary = f"min {arr.min():.5g} max {arr.max():.5g} mean {arr.mean():.5g}" if arr.size and \
            arr.dtype.kind in "fiu" else ""
        print(f"  {meta.name}: shape {list(arr.shape)} {arr.dtype} {summary}")
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            np.save(os.path.join(args.out, meta.name.replace("/", "_") + ".npy"), arr)
    if args.out:
        print(f"outputs written to {args.out}/")
    if args.profile:
        print(sess.profile_table())
    return 0


def _present_fingerprints() -> list:
    """Fingerprints of every OpenCL device here, with the compile target clmace gives PoCL."""
    from clmace.backends.opencl.device import fingerprint
    from clmace.backends.opencl.discovery import list_devices, select_device

    return [fingerprint(select_device(f"opencl:{d.index}")) for d in list_devices()]


def cmd_devices(args: argparse.Namespace) -> int:
    """List every OpenCL platform and device."""
    from clmace.backends.opencl.discovery import list_devices, select_device
    from clmace.backends.opencl.quirks.health import ensure_compilable
    from clmace.core.errors import DeviceError

    if args.check:
        for info in list_devices():
            try:  # the verdict (pass or failure) is recorded and shown below; a failure is not an error here
                ensure_compilable(select_device(f"opencl:{info.index}"))
            except DeviceError as exc:
                logging.getLogger("clmace.cli.main").debug("driver check failed on opencl:%d: %s", info.index, exc)
    devices = list_devices(with_check=True)
    if args.json:
        print(json.dumps([d.__dict__ for d in devices], indent=2))
    for d in [] if args.json else devices:
        print(d.describe())
    if not devices and not args.json:
        print("no OpenCL device found")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    """Build (and warm up) every program a model needs on a device and save the compiled-program file."""
    from clmace.session import InferenceSession

    start = time.perf_counter()
    options = {"sign_key": args.sign_key} if args.sign_key else {}
    if not os.path.exists(args.output):  # the file is about to be created: "no file found" would only confuse
        logging.getLogger("clmace.store").addFilter(lambda r: "no compiled-program file found" not in r.getMessage())
    sess = InferenceSession(args.model, device=args.device, input_shapes=shape_arg(args.input_shape) or None,
                            precision=args.precision, compiled_program=os.path.abspath(args.output), **options)
    if sess.runtime is None:
        raise ClmaceError("the model has dynamic input shapes: pass --input-shape NAME=D0,D1,.. for each")
    sess.wait_saved()
    status = sess.program_store.status()
    if not sess.program_store.save():  # again in the foreground: a failed background save is reported here
        raise ClmaceError(f"could not write {args.output} (see the warning above)")
    size = os.path.getsize(args.output) if os.path.exists(args.output) else 0
    print(f"{args.output}: {status['hits'] + status['misses']} programs ({status['misses']} compiled, "
          f"{status['hits']} reused) for {sess.runtime.device_info.name!r}, {size:,} bytes, "
          f"{time.perf_counter() - start:.2f} s")
    return run_tuning(args, args.model, args.output) if args.tune else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Describe a clmace or MACE compiled-program file."""
    from clmace.workflow.inspect import inspect_path, render_text

    info = inspect_path(args.file, trusted_keys=args.trusted_key)
    print(json.dumps(info, indent=2, default=str) if args.json else render_text(info, args.verbose_entries))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    """Create a signing key pair and print its fingerprint."""
    from clmace.store.signing import generate_keypair

    fingerprint = generate_keypair(args.private, args.public, overwrite=args.force)
    print(f"key {fingerprint}: private {args.private}, public {args.public}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """List, prune or clear the default compiled-program cache."""
    from clmace.store import cache

    if args.action == "list":
        info = cache.list_cache()
        if args.json:
            print(json.dumps(info, indent=2))
            return 0
        print(f"cache directory: {info['cache_dir']}")
        for f in info["program_files"]:
            print(f"  {f['path']} ({f['size']:,} bytes)" + (f": {f['error']}" if "error" in f else ""))
            for sec in f.get("sections", []):
                print(f"    {sec['device']}: {sec['entries']} programs, {sec['tuned']} tuned records")
        pocl = info["pocl_cache"]
        print(f"  PoCL kernel cache ({pocl['path']}): {pocl['files']} files, {pocl['size']:,} bytes")
        models = info["converted_models"]
        print(f"  converted models of .onnx files ({models['path']}): {models['files']} files, "
              f"{models['size']:,} bytes")
    elif args.action == "prune":
        removed = cache.prune(_present_fingerprints())
        print("\n".join(removed) if removed else "nothing to prune")
    else:
        print(f"cleared {cache.clear():,} bytes")
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    from clmace.workflow import ops_report

    rows = ops_report.coverage()
    only = set(args.op) if args.op else None
    if only:
        rows = [r for r in rows if r.op in only]
    if args.suite:
        ops_report.run_suite(rows, args.device, only)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(ops_report.render(rows, args.suite))
    return 0


def _version() -> str:
    import clmace

    return getattr(clmace, "__version__", "unknown")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="clmace", description="MACE-style inference engine for ONNX models.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("--version", action="version", version=f"clmace {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog="example:\n  " + EXAMPLES[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(fn=fn)
        return p

    p = add("convert", cmd_convert, "Convert an ONNX model to a clmace converted-model file.")
    p.add_argument("model", nargs="?", help="ONNX model path")
    p.add_argument("-o", "--output", help="output file (or directory with --config)")
    p.add_argument("--config", help="MACE-style deploy YAML; converts every model it lists")
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,..", help="fix an input's shape")

    p = add("info", cmd_info, "Show a model's inputs, outputs, ops, parameters and FLOPs.")
    p.add_argument("model", help=".onnx or converted-model file")
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,..", help="fix an input's shape")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("run", cmd_run, "Run a model on given or random inputs and print/save the outputs.")
    p.add_argument("model", help=".onnx or converted-model file")
    p.add_argument("--input", action="append", metavar="NAME=FILE.npy|random", help="an input's data")
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,..", help="fix a dynamic input's shape")
    p.add_argument("--out", help="directory to write one .npy per output")
    p.add_argument("--device", default=None, help="cpu, opencl, gpu or opencl:N (default: $CLMACE_DEVICE or cpu)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"], help="OpenCL storage precision")
    p.add_argument("--repeat", type=int, default=1, help="run this many times and report the median")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    p.add_argument("--profile", action="store_true", help="per-node OpenCL timing table")

    p = add("devices", cmd_devices, "List every OpenCL platform and device (index, type, driver, memory, fp16, "
                                    "PoCL's CPU target, clmace's driver check).")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--check", action="store_true", help="run the driver check (canary) now on every device")

    p = add("compile", cmd_compile, "Build a model's OpenCL programs on a device and save the compiled-program file.")
    p.add_argument("model", help=".onnx or converted-model file")
    p.add_argument("-o", "--output", required=True, help="compiled-program file to write (merged if present)")
    p.add_argument("--device", default="opencl", help="opencl, gpu or opencl:N")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"], help="storage precision")
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,..", help="fix a dynamic input's shape")
    p.add_argument("--sign-key", help="Ed25519 private key (from `clmace keygen`) to sign the file with")
    p.add_argument("--tune", action="store_true", help="also tune variants and local sizes (see `clmace tune`)")
    add_tune_arguments(p, standalone=False)

    p = add("tune", cmd_tune, "Tune kernel variants and work-group sizes of a model on a device; the records go into "
            "the compiled-program file (resumes where an earlier run stopped).")
    p.add_argument("model", nargs="?", help=".onnx or converted-model file (optional with --export/--import-tuning)")
    p.add_argument("-o", "--output", required=True, help="compiled-program file to write (merged if present)")
    p.add_argument("--device", default="opencl", help="opencl, gpu or opencl:N")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"], help="storage precision")
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,..", help="fix a dynamic input's shape")
    add_tune_arguments(p, standalone=True)

    p = add("inspect", cmd_inspect, "Show what a compiled-program file holds (clmace's, or MACE's).")
    p.add_argument("file", help="compiled-program file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-e", "--entries", dest="verbose_entries", action="store_true",
                   help="also list every entry and tuned record")
    p.add_argument("--trusted-key", action="append", metavar="PUBLIC.pem",
                   help="verify the signature against this public key (also $CLMACE_TRUSTED_KEYS)")

    p = add("keygen", cmd_keygen, "Create an Ed25519 key pair for signing compiled-program files.")
    p.add_argument("private", help="private key file to create (PEM, mode 0600)")
    p.add_argument("public", help="public key file to create (PEM): give it to apps as a trusted key")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")

    p = add("ops", cmd_ops, "List every supported op: its opsets, whether OpenCL runs it as a kernel, a view or on "
            "the host; --suite also runs the ONNX backend node cases of each op now.")
    p.add_argument("--suite", action="store_true", help="run the ONNX node suite cases per op (takes a minute)")
    p.add_argument("--device", default="cpu", help="device for --suite: cpu, opencl, gpu or opencl:N")
    p.add_argument("--op", action="append", help="only this op (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("cache", cmd_cache, "List, prune or clear the default compiled-program cache ($CLMACE_CACHE_DIR).")
    p.add_argument("action", choices=["list", "prune", "clear"])
    p.add_argument("--json", action="store_true", help="machine-readable output (list)")

    register_workflow(sub, add)
    register_batch(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `clmace` console script."""
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args)
    except BrokenPipeError:  # e.g. `clmace inspect --json FILE | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 0
    except (ClmaceError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"clmace {args.command}: error: {exc}", file=sys.stderr)
        return 2
