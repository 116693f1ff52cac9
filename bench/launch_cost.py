"""Host cost of one kernel launch on an OpenCL device: a tiny kernel enqueued N times through pyopencl, on a
queue with profiling on (what clmace's runs use) and off, keeping every event (as a profiled run does) or
dropping it; alternating, medians of the rounds. Also says whether the driver offers cl_khr_command_buffer.

    python -m bench.launch_cost [--device gpu] [--launches 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="opencl")
    parser.add_argument("--launches", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import pyopencl as cl

    from clmace.backends.opencl.discovery import select_device

    dev = select_device(args.device)
    ctx = cl.Context([dev])
    queues = {"profiling on": cl.CommandQueue(ctx, dev, properties=cl.command_queue_properties.PROFILING_ENABLE),
              "profiling off": cl.CommandQueue(ctx, dev)}
    prg = cl.Program(ctx, "__kernel void k(__global float* a) { a[get_global_id(0)] += 1.0f; }").build()
    buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, 4 * 256)
    kernel = prg.k
    kernel.set_args(buf)
    results: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for label, queue in (queues.items() if r % 2 == 0 else list(queues.items())[::-1]):
            for keep in (True, False):
                queue.finish()
                events = []
                start = time.perf_counter()
                for _ in range(args.launches):
                    event = cl.enqueue_nd_range_kernel(queue, kernel, (256,), (64,))
                    if keep:
                        events.append(event)
                host = time.perf_counter() - start
                queue.finish()
                total = time.perf_counter() - start
                del events
                key = f"{label}, events {'kept' if keep else 'dropped'}"
                results.setdefault(key + ": enqueue", []).append(host / args.launches * 1e6)
                results.setdefault(key + ": until done", []).append(total / args.launches * 1e6)
    print(f"{dev.name} ({dev.platform.name}, driver {dev.driver_version})")
    print(f"cl_khr_command_buffer offered: {'cl_khr_command_buffer' in dev.extensions}")
    for key, values in results.items():
        print(f"  {key:<45} median {statistics.median(values):6.2f} us/launch  (min {min(values):.2f})")


if __name__ == "__main__":
    main()
