"""Plan estimates from the work itself: FLOPs per unit ÷ throughput measured on this machine.

Each unit kind asks its plugins what its work is (:meth:`augengine.plugin.Plugin.work`:
"``count`` × this step", :mod:`augengine.work`) from the unit's config and the data's sizes:

* ``clffit``: the classifier's ``fit`` (training steps, validation passes, LR range test);
* ``genfit``: the generator's ``fit``; ``synth``: its ``generate`` of the unit's image count;
* ``select`` / ``filtered``: the filter's ``score`` of its candidates (mostly classifier passes);
* ``eval`` / ``quality``: the evaluator's ``evaluate`` (mostly classifier passes over test,
  synthetic and training images);
* ``split``: decoding the data into the cache; not modelled (seconds, not FLOPs).

One step's FLOPs are counted once per step identity (plugin, network, batch, image size) with
``torch.utils.flop_counter.FlopCounterMode`` on the ``meta`` device — no memory, no compute —
and cached. The throughput (FLOP/s) of a step on this device is, in order: a cached
measurement (``$AUGENGINE_CACHE/estimate.json``, keyed by :func:`augengine.autotune.device_model`,
the torch version and the step), the timings of :mod:`augengine.autotune`'s trial when the
step names its autotune key, or a short probe: a few timed steps at the largest batch (and, for
fully convolutional steps, image size) whose step takes about ``step_budget_s``. A unit that is
finished counts with its recorded seconds (``done.json``) instead of its estimate.

The GPU-hours column converts the FLOPs with an *assumed* throughput of a reference GPU
(:data:`REFERENCE_GPU`), not a measurement; when the estimate itself was measured on CUDA,
the hours here are GPU-hours of that GPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from augengine.work import ClassifierPass, Work

__all__ = ["Estimator", "UnitEstimate", "REFERENCE_GPU", "ReferenceGpu", "count_flops", "probe_throughput",
           "estimate_cache_file", "format_estimate"]

CACHE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ReferenceGpu:
    """The GPU the plan is expressed in: its dense peak and the share of it a step is assumed to reach.

    Attributes:
        name: the GPU and precision.
        peak_flops: dense peak FLOP/s (datasheet).
        utilization: share of the peak reached by batched steps (``batch ≥ small_batch``).
        small_batch_utilization: share reached by steps of fewer images (batch-1 GANs: many small
            kernels, launch- and memory-bound).
        small_batch: the batch size below which a step counts as small.
        basis: where the shares come from (printed with the estimate).
    """

    name: str
    peak_flops: float
    utilization: float
    small_batch_utilization: float
    small_batch: int
    basis: str

    def flops_per_s(self, batch: int) -> float:
        """Assumed FLOP/s of a step of ``batch`` images."""
        return self.peak_flops * (self.utilization if batch >= self.small_batch else self.small_batch_utilization)


#: H100 SXM in bf16: dense tensor-core peak 989 TFLOP/s (NVIDIA's datasheet). ResNet-50 training at
#: 224 px runs at about 3,000 images/s on one H100 in published results (24.3 GFLOP per image:
#: ≈ 73 TFLOP/s, 7.5 % of the peak); single-image steps (CycleGAN at batch 1) are assumed to reach a
#: third of that. Assumptions, not measurements: the estimate says so wherever it uses them.
REFERENCE_GPU = ReferenceGpu("NVIDIA H100 SXM, bf16", 989e12, 0.075, 0.025, 8,
                             "ResNet-50 training ≈ 3,000 images/s at 224 px")


@dataclasses.dataclass
class UnitEstimate:
    """What one unit costs.

    Attributes:
        flops: FLOPs of its work (None: a plugin did not report its work).
        seconds: seconds here (recorded for a finished unit, else estimated; None when unknown).
        source: ``"recorded"`` (done.json), ``"estimated"``, ``"not reported"``.
        measured_on: device model the throughputs were measured on (empty when none was needed).
        gpu_seconds: seconds on :data:`REFERENCE_GPU` (assumed shares of its peak).
    """

    flops: float | None
    seconds: float | None
    source: str
    measured_on: str = ""
    gpu_seconds: float | None = None


def estimate_cache_file() -> Path:
    """``$AUGENGINE_CACHE/estimate.json`` (FLOP counts and measured throughputs)."""
    from augengine.data.cache import cache_dir

    return cache_dir() / "estimate.json"


def _key_string(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


class _Cache:
    """The ``estimate.json`` cache: ``flops`` (device-free) and ``throughput`` (per device) entries."""

    def __init__(self, path: Path | None):
        self.path = path
        self.data: dict[str, dict[str, Any]] = {"flops": {}, "throughput": {}}
        if path is not None:
            try:
                raw = json.loads(path.read_text())
                if isinstance(raw, dict) and raw.get("version") == CACHE_VERSION:
                    for k in self.data:
                        if isinstance(raw.get(k), dict):
                            self.data[k] = raw[k]
            except (OSError, ValueError):
                pass  # absent or damaged: only a cache

    def get(self, part: str, key: Mapping[str, Any]) -> Any:
        return self.data[part].get(_key_string(key))

    def put(self, part: str, key: Mapping[str, Any], value: Any) -> None:
        self.data[part][_key_string(key)] = value
        if self.path is None:
            return
        from augengine.runs import atomic_write_json

        try:  # merge with what another process wrote meanwhile
            raw = json.loads(self.path.read_text())
            if isinstance(raw, dict) and raw.get("version") == CACHE_VERSION:
                for k in self.data:
                    self.data[k] = {**(raw.get(k) or {}), **self.data[k]}
        except (OSError, ValueError):
            pass
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {"version": CACHE_VERSION, **self.data})
        except OSError:
            pass  # read-only cache directory: measure again next time


def count_flops(make: Callable, batch: int, image_size: int) -> float:
    """FLOPs of one step of ``make(batch, image_size, device)``, counted on the ``meta`` device.

    Falls back to a real CPU step at batch ``min(batch, 2)`` scaled linearly in the batch when
    the step cannot run on ``meta``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    def run(dev: torch.device, b: int) -> float:
        with torch.random.fork_rng(devices=[]):
            step = make(b, image_size, dev)
            with FlopCounterMode(display=False) as fc:
                step()
        return float(fc.get_total_flops())

    try:
        return run(torch.device("meta"), batch)
    except Exception:  # noqa: BLE001 - a step that needs real tensors (data-dependent code)
        b = min(batch, 2)
        return run(torch.device("cpu"), b) * batch / b


def _sizes(image_size: int, min_size: int | None) -> list[int]:
    out = [image_size]
    if min_size:
        s = image_size
        while s // 2 >= min_size:
            s = max(min_size, (s // 2) // 4 * 4)
            out.append(s)
    return out


def probe_throughput(work: Work, device: torch.device, *, step_budget_s: float = 1.0,
                     flops_at: Callable[[int, int], float] | None = None,
                     start_flops: float | None = None) -> dict[str, Any]:
    """Measure the FLOP rate of ``work``'s step on ``device`` with a few timed steps.

    Rungs are the step at its batch and image size, the batch halved (down to 2), and — when
    ``work.min_size`` allows — the image size halved. The largest rung of at most
    ``start_flops`` (default 10 GFLOP on a CPU, 2 TFLOP on CUDA), and at least batch 8 where the
    step has one, is timed first (one warm-up step, up to five timed ones within ``3 × step_budget_s``);
    then the most expensive rung predicted to take at most ``step_budget_s`` from the rate so far,
    at most three rungs in all. Each rung counts its fastest step: on a shared machine the others
    measure the neighbours (an OpenMP thread descheduled by another process makes a step many
    times slower), not the work. When the real step was not timed itself, step time = overhead +
    FLOPs ÷ rate is fitted on the two largest rungs timed and read at the real batch and size.

    Returns:
        ``{"flops_per_s", "points": [[batch, image_size, flops, seconds], …], "probe_seconds"}``.
    """
    if work.make is None:
        raise ValueError(f"{work.what}: no make() to measure it with")
    flops_at = flops_at or (lambda b, s: count_flops(work.make, b, s))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t_start = time.perf_counter()
    lo_b = min(work.batch, 2)
    batches = sorted({work.batch, *[b for b in (work.batch // 2 ** k for k in range(1, 12)) if b >= lo_b]},
                     reverse=True)
    rungs = sorted(((b, s) for s in _sizes(work.image_size, work.min_size) for b in batches),
                   key=lambda r: r[0] * r[1] ** 2, reverse=True)

    def timed(b: int, s: int, n: int, cap_s: float) -> list[float]:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)
            step = work.make(b, s, device)
            step()  # warm-up (allocations, oneDNN primitive caches, cuDNN autotuning)
            sync()
            # the thread count is left alone: oneDNN primitives made for one count and run with
            # another crash the process (SIGFPE seen with bf16 convolutions on this CPU)
            out = []
            t0 = time.perf_counter()
            for _ in range(n):
                t = time.perf_counter()
                step()
                sync()
                out.append(time.perf_counter() - t)
                if time.perf_counter() - t0 > cap_s:
                    break
        return out

    rungs.reverse()  # cheapest first
    # start at the largest rung of at most start_flops (a fraction of a second on this kind of
    # device), and at least batch 8: tiny steps measure per-step overhead, not the FLOP rate
    i = next((j for j, (b, _) in enumerate(rungs) if b >= min(work.batch, 8)), 0)
    full_f = flops_at(*rungs[-1])
    limit = start_flops if start_flops is not None else (2e12 if device.type == "cuda" else 1e10)
    fits = [j for j, (b, s) in enumerate(rungs) if full_f * (b * s * s) / (rungs[-1][0] * rungs[-1][1] ** 2) <= limit]
    i = max([i, *fits])
    points: list[tuple[int, int, float, float]] = []  # (batch, size, flops, fastest step seconds)
    for _ in range(3):
        b, s = rungs[i]
        f = flops_at(b, s)
        t = min(timed(b, s, 5, 3 * step_budget_s))  # the least disturbed step (shared CPUs)
        points.append((b, s, f, t))
        rate = f / max(t, 1e-9)
        pred = [f * (bb * ss * ss) / (b * s * s) / rate for bb, ss in rungs]
        up = [j for j in range(i + 1, len(rungs)) if pred[j] <= step_budget_s]
        if not up and len(points) == 1 and i + 1 < len(rungs) and pred[i + 1] <= 5 * step_budget_s:
            up = [i + 1]  # a second point for the overhead fit below
        if not up:
            break
        i = max(up)
    b, s, f, t = points[-1]
    full_b, full_s = rungs[-1]
    if (b, s) == (full_b, full_s) or len(points) < 2:
        rate = f / max(t, 1e-9)
    else:
        # step time = fixed overhead + FLOPs / rate: fitted on the two largest rungs timed, then
        # read at the real batch and size (small batches waste a CPU's or GPU's width)
        (_, _, f1, t1), (_, _, f2, t2) = sorted(points, key=lambda p: p[2])[-2:]
        slope = (t2 - t1) / (f2 - f1) if f2 > f1 else 0.0
        F = full_f
        if slope <= 0:
            rate = f2 / max(t2, 1e-9)
        else:
            rate = F / (max(0.0, t2 - slope * f2) + slope * F)
    return {"flops_per_s": rate, "points": [list(p) for p in points],
            "probe_seconds": round(time.perf_counter() - t_start, 2)}

def _make_matmul(b: int, s: int, device: torch.device):
    x = torch.randn(b, s, s, device=device)

    def step():
        torch.bmm(x, x)

    return step


#: what a step without ``make`` is timed as: batched fp32 matrix products
MATMUL = Work("fp32 matmul 512×512, batch 8", 0, {"engine": "matmul"}, 8, 512, make=_make_matmul)


class Estimator:
    """Estimates of a plan's units on one device.

    Args:
        bench: the :class:`~augengine.bench.runner.Bench` (its plan, data and output directory).
        device: where the throughput is measured (default: CUDA when present, else CPU).
        probe: ``probe(work, device) → {"flops_per_s", …}`` (tests replace it).
        use_cache: read and write ``estimate.json``.
        log: called with a line before each probe (a dry run says what it measures).
    """

    def __init__(self, bench, *, device: torch.device | str | None = None, probe: Callable | None = None,
                 use_cache: bool = True, log: Callable[[str], None] | None = None):
        from augengine.autotune import device_model

        self.bench = bench
        dev = device if device is not None else (bench.cfg.device if bench.cfg.device != "auto" else None)
        self.device = torch.device(dev or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.device_model = device_model(self.device)
        self.probe = probe or probe_throughput
        self.cache = _Cache(estimate_cache_file() if use_cache else None)
        self.log = log or (lambda msg: None)
        self.probes = 0  # probes run by this estimator (the rest came from caches)
        self.errors: dict[str, str] = {}  # "kind plugin" → why its work() failed
        self.measured_on: set[str] = set()
        self._by_key = None
        self._classifier = None

    # -- the work of a unit -----------------------------------------------------------------
    def _plugin(self, kind: str, name: str):
        from augengine.registry import get_plugin_class

        return get_plugin_class(kind, name)

    def _data_sizes(self) -> dict[str, Any]:
        d = self.bench.data
        return {"n_train": len(d.train), "n_val": len(d.val), "n_test": len(d.test),
                "class_counts": d.train.class_counts(), "external": {k: len(v) for k, v in d.external.items()}}

    def unit_work(self, u) -> list[Work] | None:
        """The :class:`Work` items of unit ``u`` (classifier passes resolved); None when a plugin does not report."""
        from augengine.bench.units import image_count

        if self._by_key is None:
            self._by_key = self.bench.plan().by_key()
        by_key, s, d = self._by_key, u.spec, self._data_sizes()
        n_train = d["n_train"]
        if u.kind in ("split", "resample"):  # decoding and drawing real images: no network
            return []
        if u.kind == "clffit":
            n = n_train + (image_count(s["amount"], n_train) if s.get("amount") is not None else 0)
            items = self._plugin("classifier", s["classifier"]).work(
                s["config"], phase="fit", n_images=n, class_counts=d["class_counts"], n_val=d["n_val"])
        elif u.kind == "genfit":
            items = self._plugin("generator", s["generator"]).work(
                s["config"], phase="fit", n_images=n_train, class_counts=d["class_counts"])
        elif u.kind == "synth":
            gen = next(by_key[k] for k in u.deps if by_key[k].kind == "genfit")
            n = math.ceil(image_count(s["amount"], n_train) * s["oversample"])
            items = self._plugin("generator", gen.spec["generator"]).work(gen.spec["config"], phase="generate",
                                                                         n_images=n)
        elif u.kind == "select":
            n = d["class_counts"].get(s["target_class"], n_train) if s.get("target_class") else n_train
            items = self._plugin("filter", s["filter"]).work(s["config"], phase="score", n_images=n)
        elif u.kind == "filtered":
            synth = next(by_key[k] for k in u.deps if by_key[k].kind == "synth")
            n = math.ceil(image_count(synth.spec["amount"], n_train) * synth.spec["oversample"])
            items = self._plugin("filter", s["filter"]).work(s["config"], phase="score", n_images=n)
        elif u.kind == "eval":
            t = s["test_set"]
            n_test = d["n_test"] if t == "test" else d["external"].get(t, d["n_test"])
            items = self._plugin("evaluator", s["evaluator"]).work(
                s["config"], phase="evaluate", n_images=n_test, n_classifiers=len(u.deps), n_train=n_train)
        elif u.kind == "quality":
            final = next(by_key[k] for k in u.deps if by_key[k].kind in ("synth", "filtered"))
            n_syn = image_count(final.spec["amount"], n_train)
            items = self._plugin("evaluator", s["evaluator"]).work(
                s["config"], phase="evaluate", n_images=d["n_test"], n_classifiers=1, n_synthetic=n_syn,
                n_train=n_train)
        else:
            return None
        return None if items is None else self._resolve(items)

    def _classifier_spec(self) -> tuple[str, dict[str, Any]]:
        if self._classifier is None:
            fit = next(u for u in self.bench.plan().units if u.kind == "clffit")
            self._classifier = (fit.spec["classifier"], fit.spec["config"])
        return self._classifier

    def _resolve(self, items: Iterable) -> list[Work] | None:
        out: list[Work] = []
        for it in items:
            if isinstance(it, ClassifierPass):
                name, conf = self._classifier_spec()
                sub = self._plugin("classifier", name).work(conf, phase="predict", n_images=int(it.n_images),
                                                            class_counts=self._data_sizes()["class_counts"])
                if sub is None:
                    return None
                out += [w for w in sub if isinstance(w, Work)]
            elif isinstance(it, Work):
                out.append(it)
            else:
                raise TypeError(f"work(): expected Work or ClassifierPass items, got {type(it).__name__}")
        return out

    # -- FLOPs and throughput ---------------------------------------------------------------
    def flops(self, w: Work) -> float:
        """FLOPs of one step of ``w`` (given, cached or counted)."""
        if w.flops is not None:
            return float(w.flops)
        if w.make is None:
            raise ValueError(f"work {w.what!r}: neither flops nor make() given")
        key = {"torch": torch.__version__.split("+")[0], **w.cache_key()}
        hit = self.cache.get("flops", key)
        if isinstance(hit, (int, float)):
            return float(hit)
        f = count_flops(w.make, w.batch, w.image_size)
        self.cache.put("flops", key, f)
        return f

    def _autotune_rate(self, w: Work, flops: float) -> float | None:
        """FLOP/s from :mod:`augengine.autotune`'s trial timings of the same step, when the step names them."""
        at = w.key.get("autotune") if isinstance(w.key, Mapping) else None
        if not isinstance(at, Mapping):
            return None
        from augengine.autotune import _read_cache, cache_file

        best = None
        for entry in _read_cache(cache_file()).values():
            k = entry.get("key") or {}
            if (k.get("device") == self.device_model and k.get("torch") == torch.__version__
                    and all(k.get(f) == at.get(f) for f in ("plugin", "arch", "image_size"))):
                ms = [t for t in (entry.get("timings_ms") or {}).values() if isinstance(t, (int, float)) and t > 0]
                if ms and (best is None or min(ms) < best):
                    best = min(ms)
        return flops / (best / 1000.0) if best else None

    def rate(self, w: Work) -> float:
        """FLOP/s of ``w``'s step on this device (cached, autotune's timings, or probed now)."""
        key = {"device": self.device_model, "torch": torch.__version__, **w.cache_key()}
        hit = self.cache.get("throughput", key)
        if isinstance(hit, Mapping) and isinstance(hit.get("flops_per_s"), (int, float)) and hit["flops_per_s"] > 0:
            return float(hit["flops_per_s"])
        r = self._autotune_rate(w, self.flops(w))
        if r is not None:
            self.cache.put("throughput", key, {"flops_per_s": r, "source": "autotune"})
            return r
        if w.make is None:  # nothing to run: the machine's matmul rate stands in for the step's
            w = dataclasses.replace(MATMUL, count=w.count)
            key = {"device": self.device_model, "torch": torch.__version__, **w.cache_key()}
            hit = self.cache.get("throughput", key)
            if isinstance(hit, Mapping) and isinstance(hit.get("flops_per_s"), (int, float)):
                return float(hit["flops_per_s"])
        self.log(f"estimate: measuring {w.what} on {self.device_model} …")
        res = dict(self.probe(w, self.device))
        self.probes += 1
        res["source"] = "probe"
        res["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.cache.put("throughput", key, res)
        return float(res["flops_per_s"])

    def work_seconds(self, items: list[Work]) -> tuple[float, float]:
        """(FLOPs, seconds) of ``items`` on this device (:attr:`gpu_seconds` gets their reference-GPU seconds)."""
        flops = secs = 0.0
        self.gpu_seconds = 0.0
        for w in items:
            if w.count <= 0:
                continue
            f = self.flops(w) if (w.flops is not None or w.make is not None) else 0.0
            flops += w.count * f
            self.gpu_seconds += w.count * f / REFERENCE_GPU.flops_per_s(w.batch)
            if w.seconds is not None:
                secs += w.count * float(w.seconds)
            elif f > 0:
                secs += w.count * f / self.rate(w)
                self.measured_on.add(self.device_model)
        return flops, secs

    def unit(self, u, done: Mapping[str, Any] | None = None) -> UnitEstimate:
        """The estimate of ``u``; ``done`` (its done.json) makes the recorded seconds count instead."""
        try:
            items = self.unit_work(u)
        except Exception as e:  # noqa: BLE001 - a plugin's work() that fails costs its unit's estimate only
            msg = " ".join(str(e).split())
            if hasattr(e, "errors"):  # pydantic: the first error, one line
                err = e.errors()[0]
                msg = f"{getattr(e, 'title', '')}: {err.get('msg', msg)}"
            self.errors.setdefault(f"{u.kind} {u.spec.get('generator') or u.spec.get('classifier') or ''}".strip(),
                                   f"{type(e).__name__}: {msg[:200]}")
            items = None
        if done is not None and isinstance(done.get("seconds"), (int, float)):
            flops = None
            if items is not None:  # FLOPs only: a finished unit needs no throughput
                flops = sum(w.count * self.flops(w) for w in items
                            if w.count > 0 and (w.flops is not None or w.make is not None))
            return UnitEstimate(flops, float(done["seconds"]), "recorded")
        flops, secs = self.work_seconds(items) if items is not None else (None, None)
        if items is None:
            return UnitEstimate(None, None, "not reported")
        gpu = secs if self.device.type == "cuda" else self.gpu_seconds
        return UnitEstimate(flops, secs, "estimated", self.device_model, gpu)


def _done_record(bench, u) -> dict[str, Any] | None:
    p = bench.unit_dir(u) / "done.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _hours(s: float) -> str:
    return f"{s / 3600:.2f}" if s < 36000 else f"{s / 3600:.0f}"


def _tflop(f: float) -> str:
    return f"{f / 1e12:.1f}" if f < 1e15 else f"{f / 1e12:.3g}"


def format_estimate(bench, est: Estimator, *, disk: Callable[[Any], float] | None = None) -> list[str]:
    """The dry run's table: per unit kind units (to run / all), work, hours here, disk, reference GPU-hours; a total.

    Args:
        bench: the bench.
        est: the estimator (it probes what is not cached).
        disk: ``unit → bytes`` its outputs will hold (``Bench.estimate_disk``); None = no disk column.
    """
    from augengine.bench.disk import human_bytes
    from augengine.bench.graph import KIND_ORDER

    plan = bench.plan()
    rows: dict[str, dict[str, Any]] = {}
    for u in plan.units:
        done = _done_record(bench, u)
        e = est.unit(u, done)
        r = rows.setdefault(u.kind, {"units": 0, "todo": 0, "flops": 0.0, "secs": 0.0, "done_s": 0.0, "disk": 0.0,
                                     "unknown": 0, "gpu_s": 0.0})
        r["units"] += 1
        if done is not None:
            r["done_s"] += e.seconds or 0.0
            continue
        r["todo"] += 1
        if e.source == "not reported":
            r["unknown"] += 1
            continue
        r["flops"] += e.flops or 0.0
        r["secs"] += e.seconds or 0.0
        r["gpu_s"] += e.gpu_seconds or 0.0
        if disk is not None:
            r["disk"] += disk(u)
    # controls planned once their synthetic set exists: per set, fits like the arm's and twice its evaluations
    pending = list(getattr(plan, "pending_controls", None) or [])
    if pending:
        r = rows.setdefault("controls", {"units": 0, "todo": 0, "flops": 0.0, "secs": 0.0, "done_s": 0.0,
                                         "disk": 0.0, "unknown": 0, "gpu_s": 0.0})
        for p in pending:
            fits = [u for u in plan.units if u.kind == "clffit" and p["set"] in u.deps]
            keys = {u.key for u in fits}
            evals = [u for u in plan.units if u.kind == "eval" and keys & set(u.deps)]
            r["units"] += int(p.get("units", 0))
            r["todo"] += int(p.get("units", 0))
            for u, times in [(f, 1) for f in fits] + [(e, 2) for e in evals]:
                e = est.unit(u)
                if e.source != "estimated":
                    r["unknown"] += times
                    continue
                r["flops"] += times * (e.flops or 0.0)
                r["secs"] += times * (e.seconds or 0.0)
                r["gpu_s"] += times * (e.gpu_seconds or 0.0)
                if disk is not None:
                    r["disk"] += times * disk(u)
    gpu = REFERENCE_GPU
    on_cuda = est.device.type == "cuda"
    head = f"{'kind':9s} {'units':>11s} {'work TFLOP':>11s} {'hours here':>11s} {'disk':>9s} {'GPU-hours':>10s}"
    lines = [f"estimate (units still to run; work from the plugins, throughput measured on {est.device_model}):", head]
    tot = {"units": 0, "todo": 0, "flops": 0.0, "secs": 0.0, "disk": 0.0, "done_s": 0.0, "unknown": 0, "gpu_s": 0.0}
    order = [k for k in KIND_ORDER if k in rows] + [k for k in rows if k not in KIND_ORDER]  # controls last
    for k in order:
        r = rows[k]
        for f in tot:
            tot[f] += r[f]
        g = r["gpu_s"] / 3600
        note = f"  ({r['unknown']} not reported)" if r["unknown"] else ""
        lines.append(f"{k:9s} {r['todo']:>5d} / {r['units']:<5d}{_tflop(r['flops']):>11s} {_hours(r['secs']):>11s} "
                     f"{human_bytes(r['disk']) if disk else '-':>9s} {g:>10.2f}{note}")
    g_tot = tot["gpu_s"] / 3600
    lines.append(f"{'total':9s} {tot['todo']:>5d} / {tot['units']:<5d}{_tflop(tot['flops']):>11s} "
                 f"{_hours(tot['secs']):>11s} {human_bytes(tot['disk']) if disk else '-':>9s} {g_tot:>10.2f}")
    rate = tot["flops"] / tot["secs"] if tot["secs"] > 0 else 0.0
    for what, why in est.errors.items():
        lines.append(f"not reported: {what}: work() failed: {why}")
    if pending:
        lines.append("controls: resampling-control units planned once their synthetic set exists, estimated as "
                     "the arm's fits and twice its evaluations (the resampling itself: no network)")
    if tot["done_s"]:
        lines.append(f"finished units: {_hours(tot['done_s'])} h recorded (not in the estimate)")
    days = f" ≈ {tot['secs'] / 86400:.0f} days" if tot["secs"] > 3 * 86400 else ""
    lines.append(f"hours here: {_hours(tot['secs'])} h{days} with 1 job on this machine, at the FLOP rates measured for each network "
                 f"(mean {rate / 1e12:.3g} TFLOP/s over the plan); data decoding and writing not modelled"
                 + (f"; {tot['unknown']} unit(s) whose plugins report no work are not counted" if tot["unknown"] else ""))
    if on_cuda:
        lines.append(f"GPU-hours: hours on this GPU ({est.device_model}), measured")
    else:
        g_rate = tot["flops"] / tot["gpu_s"] if tot["gpu_s"] > 0 else 0.0
        ratio = g_rate / rate if rate > 0 else float("nan")
        lines.append(f"GPU-hours: ASSUMED {gpu.name}: {gpu.utilization:.1%} of its {gpu.peak_flops / 1e12:.0f} TFLOP/s "
                     f"dense peak for steps of ≥ {gpu.small_batch} images ({gpu.basis}), "
                     f"{gpu.small_batch_utilization:.1%} for smaller ones; over this plan {g_rate / 1e12:.0f} TFLOP/s, "
                     f"{ratio:.0f}× this machine's measured rate. An assumption, not a measurement")
    return lines


def _fmt_eta(s: float) -> str:
    s = max(0.0, s)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


class EtaBar:
    """The bench's overall progress bar, whose ETA comes from the work model.

    Each unit to run gets its estimate (:class:`Estimator`); the time left is the estimate of the
    units not finished × the ratio of measured to estimated seconds over the units finished in
    this run (1 before the first), less the time since the last one finished. Units whose plugins
    report no work, and a plan that cannot be estimated at all, fall back to the mean measured time
    per finished unit. Wraps a tqdm bar (every other attribute is the bar's).
    """

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} units [{elapsed}{postfix}]"

    def __init__(self, bar, bench, estimator: Estimator | None = None):
        self._bar = bar
        self.bench = bench
        self._est = estimator
        self.estimates: dict[str, float | None] = {}  # unit key → estimated seconds (None: unknown)
        self.pending: set[str] = set()
        self.measured = 0.0
        self.estimated = 0.0
        self.finished_units: list[float] = []
        self.last = time.time()

    def __getattr__(self, name):
        return getattr(self._bar, name)

    @property
    def total(self):
        return self._bar.total

    @total.setter
    def total(self, v):
        self._bar.total = v

    def plan(self, units: Iterable) -> None:
        """Estimate ``units`` (to run now); a failing estimate leaves them unknown, never stops the run."""
        if self._bar.disable:
            return
        try:
            if self._est is None:
                self._est = self.bench.estimator(log=lambda msg: self._bar.write(msg, file=self._bar.fp))
            for u in units:
                e = self._est.unit(u)
                self.estimates[u.key] = e.seconds if e.source == "estimated" else None
        except Exception:  # noqa: BLE001 - an estimate must never stop a bench
            for u in units:
                self.estimates.setdefault(u.key, None)
        self.pending |= {u.key for u in units}
        self.last = time.time()
        self._show()

    def ratio(self) -> float:
        """Measured ÷ estimated seconds over the units finished in this run (1 before the first)."""
        return self.measured / self.estimated if self.estimated > 0 else 1.0

    def remaining(self) -> float | None:
        """Seconds left (None when nothing can be said yet)."""
        left = [self.estimates.get(k) for k in self.pending]
        known = sum(x for x in left if x is not None)
        unknown = sum(x is None for x in left)
        mean = sum(self.finished_units) / len(self.finished_units) if self.finished_units else None
        if unknown and mean is None and known == 0:
            return None
        total = known * self.ratio() + unknown * (mean or 0.0)
        return max(0.0, total - (time.time() - self.last))

    def unit_done(self, u, res: Mapping[str, Any]) -> None:
        """A unit finished (``res``: the executor's status dict with its ``seconds``)."""
        self._bar.update(1)
        if u.key in self.pending:
            self.pending.discard(u.key)
            secs = res.get("seconds")
            est = self.estimates.get(u.key)
            if not res.get("cached") and isinstance(secs, (int, float)):
                self.finished_units.append(float(secs))
                if est:
                    self.measured += float(secs)
                    self.estimated += est
        self.last = time.time()
        self._show()

    def _show(self) -> None:
        if self._bar.disable:
            return
        r = self.remaining()
        self._bar.set_description_str("bench" if r is None else f"bench, ≈ {_fmt_eta(r)} left", refresh=True)

    def update(self, n: int = 1):
        return self._bar.update(n)

    def close(self):
        return self._bar.close()
