"""The auto-tuner: for every launch of a plan, search kernel variants and local sizes; store the winners per device."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clmace.backends.opencl.plan.schedule import Launch
from clmace.backends.opencl.plan.variants import AUTO, TUNE_VERSION, Bound, LwsChoice, TuneSpec, Variant, heuristic_lws
from clmace.backends.opencl.tuning.space import lws_candidates

log = logging.getLogger("clmace.backends.opencl.tuning.search")

Timer = Callable[[Launch, int], list[float]]  # (launch, runs) -> seconds of each run
Progress = Callable[[int, int, str, float], None]  # (done, total, label, best-so-far gain)
MARGIN = 0.03  # a candidate must beat the default by this much: noise alone must not flip the choice
FINALISTS = 3


@dataclass
class SpecResult:
    """The outcome for one record key: default and winning configuration with their times."""

    key: str
    family: str
    node: str
    shape: str
    count: int
    default: str
    default_s: float
    variant: str
    lws: LwsChoice
    best_s: float
    tried: int
    failed: int

    @property
    def gain(self) -> float:
        """Default time over tuned time."""
        return self.default_s / self.best_s if self.best_s > 0 else 1.0


@dataclass
class TuneReport:
    """What a tuning run did: results per key, what it resumed over, and why it stopped."""

    results: list[SpecResult] = field(default_factory=list)
    total: int = 0
    resumed: int = 0
    failures: list[str] = field(default_factory=list)
    interrupted: bool = False
    out_of_budget: bool = False
    context_lost: str = ""  # the candidate after which the device stopped answering (NVIDIA errors are sticky)
    reverted: list[str] = field(default_factory=list)  # keys whose choice lost to the default inside the model
    seconds: float = 0.0

    def gain(self) -> float:
        """Device time of the tuned launches, default over tuned (each key weighted by its launch count)."""
        default = sum(r.default_s * r.count for r in self.results)
        best = sum(r.best_s * r.count for r in self.results)
        return default / best if best > 0 else 1.0


class _OutOfBudget(Exception):
    pass


class _ContextLost(Exception):
    """A failed candidate left the device context unusable: stop, keep what was measured."""


def event_timer(queue: Any) -> Timer:
    """Times runs of a launch with OpenCL profiling events (the queue has profiling enabled)."""

    def timer(launch: Launch, runs: int) -> list[float]:
        events = [launch.enqueue(queue) for _ in range(runs)]
        events[-1].wait()
        return [(e.profile.end - e.profile.start) * 1e-9 for e in events]

    return timer


def _lws_text(lws: LwsChoice) -> str:
    return "NULL" if lws is None else "x".join(map(str, lws))


class Tuner:
    """Searches variants and local sizes for every launch of an OpenCLRuntime's plan; records go to its
    device handle's program cache, and `save` (when given) checkpoints them every `save_every` seconds."""

    def __init__(self, runtime: Any, save: Callable[[], bool] | None = None, *, budget: float | None = None,
                 seed: int = 0, repeats: int = 7, hopeless: float = 3.0, retune: bool = False,
                 timer: Timer | None = None, progress: Progress | None = None, save_every: float = 10.0,
                 generic: bool = True) -> None:
        self.rt, self.plan, self.queue = runtime, runtime.plan, runtime.queue
        runtime.profiling = True  # the tuner reads the launches' times of its runs
        self.save, self.budget, self.seed = save, budget, seed
        self.repeats, self.hopeless, self.retune = max(2, repeats), hopeless, retune
        self.timer = timer or event_timer(self.queue)
        self.progress, self.save_every, self.generic = progress, save_every, generic
        self.nodes = {n.name: n for n in self.plan.nodes}
        self.trial_builder = self.plan.builder.child()
        self.report = TuneReport()
        self._todo: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._last_save = time.perf_counter()
        self._lost = False

    # --- the run -------------------------------------------------------------------------------
    def feeds(self) -> dict[str, np.ndarray]:
        """Seeded random inputs: every candidate is checked against the default on the same data."""
        rng = np.random.default_rng(self.seed)
        out = {}
        for v in self.rt.graph.inputs:
            shape = tuple(int(d) for d in v.shape)
            dtype = np.dtype(v.dtype)
            out[v.name] = (rng.standard_normal(shape).astype(dtype) if dtype.kind == "f"
                           else rng.integers(0, 2, shape).astype(dtype))
        return out

    def run(self) -> TuneReport:
        """Tune every launch not recorded yet for this device; Ctrl-C or the budget keep what was measured."""
        start = time.perf_counter()
        self.deadline = start + self.budget if self.budget is not None else None
        feeds = self.feeds()
        self._plan_work(feeds)
        self._done = 0
        self._tick("start")
        try:
            self.rt.replay(feeds, self._on_launch)
        except KeyboardInterrupt:
            self.report.interrupted = True
            log.warning("tuning interrupted: keeping the %d record(s) measured so far", len(self.report.results))
        except _OutOfBudget:
            self.report.out_of_budget = True
            log.info("tuning budget of %.0f s spent; a later run resumes with the rest", self.budget)
        except _ContextLost as lost:
            from clmace.backends.opencl.device import drop_context

            self.report.context_lost = str(lost)
            drop_context(self.plan.device)  # runtimes made from now on get a fresh context
            log.warning("the device stopped answering after %s; records so far are kept and that launch is "
                        "recorded with its default, so a new run resumes past it", lost)
        finally:
            if not self._lost:
                self.queue.finish()
            self.report.seconds = time.perf_counter() - start
            self._save(force=True)
        return self.report

    def _plan_work(self, feeds: dict[str, np.ndarray]) -> None:
        """Which record keys need tuning, and each one's share of the device time (for the budget)."""
        self.rt.run(feeds)
        self.rt.run(feeds)
        times = [row[3] for row in self.rt.node_times()]
        for step, seconds in zip(self.plan.steps, times):
            spec = getattr(step, "spec", None)
            if spec is None or (spec.family.startswith("lws:") and not self.generic):
                continue
            self._counts[spec.key] = self._counts.get(spec.key, 0) + 1
            if spec.key in self._todo:
                self._todo[spec.key] += seconds
            elif self.retune or self.plan.builder.tuned(spec.key) is None:
                self._todo[spec.key] = seconds
        resumed = {k for k in self._counts if k not in self._todo}
        self.report.total, self.report.resumed = len(self._counts), len(resumed)
        if resumed:
            log.info("resuming: %d of %d launch keys already tuned for this device", len(resumed), len(self._counts))

    def _on_launch(self, index: int, launch: Launch) -> None:
        spec = launch.spec
        if spec is None or spec.key not in self._todo:
            launch.enqueue(self.queue)
            return
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            raise _OutOfBudget
        weight = self._todo.pop(spec.key)
        result = self._tune(launch, spec, self._allowance(weight))
        if result is not None:
            self.report.results.append(result)
            self._record(result, spec)
        self._done += 1
        self._tick(f"{spec.family} {spec.shape}"[:60])
        self._save()

    def _allowance(self, weight: float) -> float | None:
        """This key's slice of what is left of the budget, in proportion to its device time."""
        if self.deadline is None:
            return None
        left = self.deadline - time.perf_counter()
        rest = weight + sum(self._todo.values())
        share = left * weight / rest if rest > 0 else left
        return time.perf_counter() + max(share, left / (4 * (len(self._todo) + 1)))

    def _tick(self, label: str) -> None:
        if self.progress is not None:
            total = len(self._todo) + self._done
            self.progress(self._done, total, label, self.report.gain())

    # --- one launch ----------------------------------------------------------------------------
    def _tune(self, launch: Launch, spec: TuneSpec, until: float | None) -> SpecResult | None:
        """Search one launch; its outputs are left as the plan's own launch computes them."""
        node = self.nodes[launch.node]
        launch.enqueue(self.queue)
        ref = self._output(node)
        self.trials: dict[tuple[str, LwsChoice], float | None] = {}
        self.tried = self.failed = 0
        try:
            with self.plan.scratch(self.trial_builder):
                return self._search(node, spec, ref, until)
        except _ContextLost as lost:  # record the plan's own (default) choice: a new run resumes past this key
            self._put(spec.key, {"family": spec.family, "variant": launch.variant,
                                 "kernel": launch.kernel.function_name,
                                 "lws": None if launch.lws is None else list(launch.lws), "lost_context": str(lost),
                                 "node": node.name, "shape": spec.shape})
            raise
        finally:
            if not self._lost:
                launch.enqueue(self.queue)  # a failed candidate may have left garbage in the outputs
                self.queue.finish()

    def _search(self, node: Any, spec: TuneSpec, ref: np.ndarray, until: float | None) -> SpecResult | None:
        bounds: dict[str, Bound] = {}
        default_lws = spec.default_lws
        # GPUs get the GPU-shaped variants only: the CPU-shaped ones lean on buffer slack for long vector
        # loads and keep large private arrays, and one of them faulted the H200's context (see docs/TUNING.md).
        order = [spec.default] + [v for v in spec.variants if v is not spec.default and (v.gpu or not self.plan.is_gpu)]
        for v in order:  # stage 1: every variant at its default local size
            if v is not spec.default and self._late(until):
                break
            try:
                bounds[v.name] = self.plan.prepare(spec, v)
            except Exception as exc:  # noqa: BLE001 - a build failure only removes this variant
                self._fail(spec, v, None, f"build failed: {_first_line(exc)}")
                continue
            lws = default_lws if v is spec.default else AUTO
            lws = heuristic_lws(v, bounds[v.name].gws, self.plan.is_gpu) if lws == AUTO else lws
            self._try(node, spec, v, bounds[v.name], lws, ref)
        default_key = (spec.default.name, self._default_lws(spec, bounds))
        if self.trials.get(default_key) is None:
            self.report.failures.append(f"{spec.key}: the default configuration failed; not tuned")
            return None
        by_time = sorted(((t, k) for k, t in self.trials.items() if t is not None), key=lambda tk: tk[0])
        for _, (name, lws0) in by_time[:2]:  # stage 2: local sizes of the two best variants
            v = spec.variant(name)
            if v is None or v.lws is not None:
                continue
            kernel_limit = self._kernel_limit(bounds[name].kernel)
            for lws in lws_candidates(bounds[name].gws, kernel_limit, list(self.plan.device.max_work_item_sizes),
                                      self.plan.is_gpu, spec.exact, lws0):
                if self._late(until):
                    break
                if (name, lws) not in self.trials:
                    self._try(node, spec, v, bounds[name], lws, ref)
        return self._final(node, spec, bounds, default_key)

    def _final(self, node: Any, spec: TuneSpec, bounds: dict[str, Bound], default_key: tuple) -> SpecResult | None:
        """Re-time the best few and the default, interleaved; the default stays unless clearly beaten."""
        by_time = sorted(((t, k) for k, t in self.trials.items() if t is not None), key=lambda tk: tk[0])
        finalists = list(dict.fromkeys([default_key] + [k for _, k in by_time[:FINALISTS]]))
        final: dict[tuple, float] = {}
        for _ in range(3):
            for key in list(finalists):
                v = spec.variant(key[0])
                launch = self.plan.make_launch(node.name, spec, v, bounds[key[0]], key[1])  # type: ignore[arg-type]
                try:
                    seconds = statistics.median(self.timer(launch, self.repeats))
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001 - as in _try: drop it (the default too, then untuned)
                    self._fail(spec, v, key[1], _first_line(exc))  # type: ignore[arg-type]
                    self._check_alive(f"{key[0]} lws={_lws_text(key[1])}")
                    finalists.remove(key)
                    final.pop(key, None)
                    if key == default_key:
                        return None
                    continue
                final[key] = min(final.get(key, seconds), seconds)
        best = min(finalists, key=lambda k: (final[k], finalists.index(k)))
        if final[best] > final[default_key] * (1 - MARGIN):
            best = default_key
        return SpecResult(spec.key, spec.family, node.name, spec.shape, self._counts.get(spec.key, 1),
                          f"{default_key[0]} lws={_lws_text(default_key[1])}", final[default_key], best[0], best[1],
                          final[best], self.tried, self.failed)

    def _try(self, node: Any, spec: TuneSpec, v: Variant, bound: Bound, lws: LwsChoice, ref: np.ndarray) -> None:
        """Run one configuration: warm up, check its output against the default's, time it (early stop)."""
        self.tried += 1
        key = (v.name, lws)
        self.trials[key] = None
        try:
            launch = self.plan.make_launch(node.name, spec, v, bound, lws)
            launch.enqueue(self.queue)
            self.queue.finish()
            if not _close(self._output(node), ref, self.plan.half):
                self._fail(spec, v, lws, "output differs from the default's")
                return
            first = self.timer(launch, 1)[0]
            best = min((t for t in self.trials.values() if t is not None), default=None)
            if best is not None and first > self.hopeless * best:
                return  # hopeless: stop after one timed run
            runs = max(1, min(self.repeats - 1, int(0.05 / max(first, 1e-7))))
            self.trials[key] = statistics.median([first, *self.timer(launch, runs)])
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - CL_OUT_OF_RESOURCES, INVALID_WORK_GROUP_SIZE, ...: skip it
            self._fail(spec, v, lws, _first_line(exc))
            self._check_alive(f"{spec.family} {spec.shape}: {v.name} lws={_lws_text(lws)}")

    def _check_alive(self, what: str) -> None:
        """Raise _ContextLost when the queue no longer works after a failed candidate."""
        try:
            self.queue.finish()
        except Exception as exc:  # noqa: BLE001 - any error here means the context is gone
            self._lost = True
            raise _ContextLost(f"{what} ({_first_line(exc)})") from None

    def _fail(self, spec: TuneSpec, v: Variant, lws: LwsChoice, why: str) -> None:
        self.failed += 1
        text = f"{spec.family} {spec.shape}: {v.name} lws={_lws_text(lws)} skipped: {why}"
        self.report.failures.append(text)
        log.info("%s", text)

    # --- helpers -------------------------------------------------------------------------------
    def _default_lws(self, spec: TuneSpec, bounds: dict[str, Bound]) -> LwsChoice:
        lws = spec.default_lws
        bound = bounds.get(spec.default.name)
        if lws == AUTO and bound is not None:
            return heuristic_lws(spec.default, bound.gws, self.plan.is_gpu)
        return lws  # type: ignore[return-value]

    def _kernel_limit(self, kernel: Any) -> int:
        import pyopencl as cl

        limit = int(self.plan.device.max_work_group_size)
        try:
            limit = min(limit, int(kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE,
                                                              self.plan.device)))
        except Exception:  # noqa: BLE001 - a driver that cannot say: the device limit stands
            pass
        return limit

    def _late(self, until: float | None) -> bool:
        return until is not None and time.perf_counter() >= until

    def _output(self, node: Any) -> np.ndarray:
        import pyopencl as cl

        name = next(o for o in node.outputs if o)
        out = np.empty(self.plan.shape(name), self.plan.stored(name))
        if out.size:
            cl.enqueue_copy(self.queue, out, self.plan.buf(name), is_blocking=True)
        return out

    def _record(self, r: SpecResult, spec: TuneSpec) -> None:
        v = spec.variant(r.variant)
        options = " ".join(self.plan.builder.key(v.file, v.options({}))[1]) if v else ""
        self._put(r.key, {
            "v": TUNE_VERSION, "family": r.family, "variant": r.variant, "kernel": v.kernel if v else "",
            "options": options, "lws": None if r.lws is None else list(r.lws), "us": round(r.best_s * 1e6, 3),
            "default": r.default, "default_us": round(r.default_s * 1e6, 3), "tried": r.tried, "failed": r.failed,
            "node": r.node, "shape": r.shape})

    def _put(self, key: str, record: dict) -> None:
        self.plan.builder.put_tuned(key, {"v": TUNE_VERSION, **record})

    def _save(self, force: bool = False) -> None:
        if self.save is None or not (force or time.perf_counter() - self._last_save >= self.save_every):
            return
        if not self.save():
            log.warning("tuned records could not be saved now; they stay in memory until the next save")
        self._last_save = time.perf_counter()
        self._lost = False


def _close(got: np.ndarray, ref: np.ndarray, half: bool) -> bool:
    """Same values within float tolerance (summation order differs between variants), exact otherwise."""
    if got.shape != ref.shape:
        return False
    if ref.dtype.kind != "f":
        return bool(np.array_equal(got, ref))
    g, r = got.astype(np.float64), ref.astype(np.float64)
    finite = np.isfinite(r)
    if not np.array_equal(finite, np.isfinite(g)):
        return False
    scale = float(np.abs(r[finite]).max()) if finite.any() else 0.0
    tol = (2e-2 if half else 1e-3) * max(scale, 1e-6)
    return bool(np.all(np.abs(g[finite] - r[finite]) <= tol))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
