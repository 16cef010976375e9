"""Measured ``auto`` speed settings: a short timed trial at the start of a fit, cached per machine.

Every plugin exposes the same speed knobs — ``precision`` (fp32 | bf16 | fp16 autocast),
``channels_last`` (memory format), and where it has them ``batched_passes``, ``grouped``
(CycleGAN), ``compile`` (torch.compile) and ``cudagraphs`` (CycleGAN: torch.compile's
``reduce-overhead`` mode, which replays the compiled graphs as CUDA graphs: one launch per graph
instead of one per kernel, for the launch-bound small-batch steps of a GPU; it implies compile).
A knob set to a fixed value is used as given; a knob left at ``"auto"`` is resolved here by *measuring*, never by a rule proven on one machine:

1. a resumed run reuses the variant recorded in its ``run.json`` (same numerics as the run it
   continues);
2. else a cache hit — ``$AUGENGINE_CACHE/autotune.json``, keyed by device model (CPU model and
   thread count, or CUDA device name), torch version, plugin, architecture, image size and the
   knobs' candidate space — is used without measuring;
3. else, when the fit is long enough that the trial costs at most ``share`` of it, each candidate
   runs a few training steps (plugin-supplied ``trial``; throwaway networks, random data, the
   caller's RNG state untouched) and the fastest median step wins; the result is cached;
4. else (a run shorter than the trial) every auto knob takes its safe value: fp32, contiguous,
   unbatched, ungrouped, eager.

Candidates are searched one knob at a time (precision first, then memory format, batching,
grouping, compile), each knob keeping the best value found so far for the others, in passes
until one changes nothing; then flips of the best that timed within ``NEAR_TIE`` of it (5 %)
are tried two at a time (knobs interact: two flips that each lose a little can win together),
and a pair that wins starts the search again: the trial grows with the number of knobs, not
with their product. ``$AUGENGINE_AUTOTUNE`` = ``off`` skips trials (safe defaults, unless
cached or resumed); ``retune`` ignores the cache.

Compiling is the long part of a trial (a minute or more per compiled candidate, each compiled
from scratch). When the plugin's trial can run in another process (a :class:`PluginTrial`), the
compiled candidates a pass over the knobs is about to measure are compiled side by side first,
one fresh process each (``$AUGENGINE_AUTOTUNE_WORKERS`` at a time; default a third of the
intra-op threads, at least 2, at most 8, none in a process of one thread; fewer where the
memory would not hold them, each taken to need this process's peak; 1 = never): their
generated code lands in torch.compile's on-disk caches (inductor's FX graph cache,
AOTAutograd's), so that the trial's own compile of each, in this process and timed as before,
is a cache hit of seconds. Only the timings of this process count.

The :class:`Resolution` goes into the run record (``run.json`` key ``speed``): the variant, where
it came from (``fixed``, ``resume``, ``cache``, ``trial``, ``default``) and the trial's timings.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import statistics
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from augengine.errors import ConfigError
from augengine.runtime import release_free_memory

__all__ = [
    "Variant",
    "Resolution",
    "SAFE",
    "KNOBS",
    "device_model",
    "precision_options",
    "candidate_space",
    "cache_key",
    "cache_file",
    "resolve_variant",
    "static_variant",
    "PluginTrial",
    "precompile_workers",
]

KNOBS = ("precision", "channels_last", "batched", "grouped", "compile", "cudagraphs")
PRECISIONS = ("fp32", "bf16", "fp16")
SOURCES = ("fixed", "resume", "cache", "trial", "default")
CACHE_VERSION = 1
# seconds a torch.compile candidate is assumed to spend compiling before its first step (it is
# only tried when the fit's share allows this much on top of the other candidates)
COMPILE_COST_S = 60.0
# timed steps per candidate: at least ``steps``, more while they take under TIMED_SECONDS in all
TIMED_SECONDS = 1.0
MAX_TIMED_STEPS = 20
# a round of compiles side by side takes longer than one compile alone (they share the cores: two
# CycleGAN candidates at 128 px on 2 cores took 109 s together, 72 s each alone); assumed until a
# round has been measured
PARALLEL_ROUND_FACTOR = 1.5
# a flip of the best within this fraction of its step time is a near tie: such flips are also
# tried two at a time (knobs interact by more than that: at 256 px on a 2-core Xeon,
# channels_last and batched passes each lost to bf16+compile by 2-5 % alone, in two trials, and
# won by 4-7 % together); 5 % is also the margin the benchmarks hold a default to
NEAR_TIE = 0.05
# seconds a compiled candidate is assumed to spend loading its precompiled code (measured: 3.4 s
# for a CycleGAN candidate at 128 px on a 2-core CPU), until one has been measured
CACHE_HIT_S = 10.0


@dataclass(frozen=True)
class Variant:
    """One combination of the speed knobs."""

    precision: str = "fp32"
    channels_last: bool = False
    batched: bool = False
    grouped: bool = False
    compile: bool = False
    cudagraphs: bool = False  # compile in mode "reduce-overhead" (CUDA graphs); implies compile

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ConfigError(f"speed variant: precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.cudagraphs and not self.compile:  # one variant, one name: cudagraphs is a compile mode
            object.__setattr__(self, "compile", True)

    @property
    def compile_mode(self) -> str | None:
        """The ``mode`` argument of ``torch.compile`` for this variant."""
        return "reduce-overhead" if self.cudagraphs else None

    @property
    def label(self) -> str:
        """``"bf16+cl+batched"`` style name (``"fp32"`` for the safe variant)."""
        parts = [self.precision] + [name for name, on in (("cl", self.channels_last), ("batched", self.batched),
                                                           ("grouped", self.grouped), ("compile", self.compile),
                                                           ("cudagraphs", self.cudagraphs)) if on]
        return "+".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "speed variant") -> "Variant":
        unknown = sorted(set(d) - set(KNOBS))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(KNOBS)})")
        return cls(**{k: (str(v) if k == "precision" else bool(v)) for k, v in d.items()})

    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype (None = fp32, no autocast)."""
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]


SAFE = Variant()


@dataclass
class Resolution:
    """The variant a fit trains with, and where it came from."""

    variant: Variant
    source: str
    key: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float | None] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The ``speed`` entry of ``run.json``."""
        return {"variant": self.variant.as_dict(), "label": self.variant.label, "source": self.source,
                "key": self.key, "timings_ms": self.timings_ms}

    @classmethod
    def from_record(cls, rec: Mapping[str, Any], where: str = "run.json speed") -> "Resolution":
        if not isinstance(rec, Mapping) or "variant" not in rec:
            raise ConfigError(f"{where}: expected an object with a 'variant' key")
        return cls(Variant.from_dict(rec["variant"], where), str(rec.get("source", "resume")),
                   dict(rec.get("key") or {}), dict(rec.get("timings_ms") or {}))


# -- the candidate space ---------------------------------------------------------------------------
def device_model(device: torch.device | str) -> str:
    """What the cache is keyed by: the CUDA device name, or the CPU model with the thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    from augengine.runtime import cpu_model

    return f"cpu:{cpu_model()}:{torch.get_num_threads()}threads"


def precision_options(device: torch.device | str, fp16: bool = False) -> list[str]:
    """Precisions worth measuring on ``device``: fp32, bf16 where native (CUDA with bf16, CPUs with
    AVX-512 BF16/AMX; emulated bf16 is 10–40× slower, never a candidate) and fp16 on CUDA when the
    plugin allows it (it needs loss scaling)."""
    from augengine.runtime import cpu_supports_bf16

    device = torch.device(device)
    out = ["fp32"]
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            out.append("bf16")
        if fp16:
            out.append("fp16")
    elif cpu_supports_bf16():
        out.append("bf16")
    return out


def _fixed_value(knob: str, value: Any) -> Any:
    if knob == "precision":
        if value not in PRECISIONS:
            raise ConfigError(f"config key 'precision': expected auto, {', '.join(PRECISIONS)}, got {value!r}")
        return value
    if isinstance(value, str):
        if value.lower() in ("on", "true", "1", "yes"):
            return True
        if value.lower() in ("off", "false", "0", "no"):
            return False
        raise ConfigError(f"config key {knob!r}: expected auto, on/off or true/false, got {value!r}")
    return bool(value)


def candidate_space(requested: Mapping[str, Any], options: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Per knob, the values to consider: ``[fixed value]`` for a fixed setting, ``options[knob]``
    (safe value first) for ``"auto"``; knobs the plugin lacks stay at their safe value.

    Args:
        requested: the config's settings, knob → ``"auto"`` or a fixed value.
        options: knob → the values ``auto`` may choose from on this device.
    """
    unknown = sorted((set(requested) | set(options)) - set(KNOBS))
    if unknown:
        raise ConfigError(f"speed settings: unknown knob {unknown[0]!r} (known: {', '.join(KNOBS)})")
    space: dict[str, list[Any]] = {}
    for knob in KNOBS:
        safe = getattr(SAFE, knob)
        value = requested.get(knob, safe)
        if isinstance(value, str) and value == "auto":
            vals = list(options.get(knob, [safe]))
            space[knob] = [safe] + [v for v in vals if v != safe] if safe in vals else vals
        else:
            space[knob] = [_fixed_value(knob, value)]
    if space["compile"] == [False]:  # CUDA graphs are a compile mode: no compile, no CUDA graphs
        if space["cudagraphs"] == [True]:
            raise ConfigError("config key 'cudagraphs': CUDA graphs are a torch.compile mode; they need compile "
                              "on or auto, got compile off")
        space["cudagraphs"] = [False]
    return space


def static_variant(requested: Mapping[str, Any]) -> Variant:
    """The variant without measuring: fixed settings as given, ``auto`` knobs at their safe value
    (what a fit too short for a trial, or code outside a fit, uses)."""
    return _safe_of(candidate_space(requested, {}))


def _safe_of(space: Mapping[str, list[Any]]) -> Variant:
    return Variant(**{k: (getattr(SAFE, k) if getattr(SAFE, k) in v else v[0]) for k, v in space.items()})


# -- the cache -------------------------------------------------------------------------------------
def cache_file() -> Path:
    """``$AUGENGINE_CACHE/autotune.json`` (the engine's cache directory)."""
    from augengine.data.cache import cache_dir

    return cache_dir() / "autotune.json"


def cache_key(*, plugin: str, arch: str, image_size: int, device: torch.device | str,
              space: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The fields a cached choice depends on."""
    return {"device": device_model(device), "torch": str(torch.__version__), "plugin": str(plugin), "arch": str(arch),
            "image_size": int(image_size), "space": {k: list(v) for k, v in space.items()}}


def _key_string(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError):
        return {}  # a damaged cache is only a cache: measure again and rewrite it
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    return data.get("entries", {}) if isinstance(data.get("entries"), dict) else {}


def _lookup(key: Mapping[str, Any]) -> dict[str, Any] | None:
    return _read_cache(cache_file()).get(_key_string(key))


def _store(key: Mapping[str, Any], res: Resolution) -> None:
    from augengine.runs import atomic_write_json

    path = cache_file()
    entries = _read_cache(path)
    entries[_key_string(key)] = {"key": dict(key), "variant": res.variant.as_dict(), "timings_ms": res.timings_ms,
                                 "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        atomic_write_json(path, {"version": CACHE_VERSION, "entries": entries})
    except OSError:
        pass  # a read-only cache directory costs a trial next time, nothing else


# -- the resolution --------------------------------------------------------------------------------
Trial = Callable[[Variant, int], Sequence[float]]


def _merge_recorded(recorded: Variant, space: Mapping[str, list[Any]]) -> Variant:
    """The recorded variant, except where a knob is now fixed to another value (fixed wins)."""
    vals = {}
    for k, cands in space.items():
        rec = getattr(recorded, k)
        vals[k] = rec if (len(cands) > 1 or rec in cands) else cands[0]
    return Variant(**vals)


def resolve_variant(*, plugin: str, arch: str, image_size: int, device: torch.device | str,
                    requested: Mapping[str, Any], options: Mapping[str, Sequence[Any]], trial: Trial | None,
                    total_steps: int, steps: int = 3, warmup: int = 1, share: float = 0.05,
                    recorded: Mapping[str, Any] | None = None, use_cache: bool = True,
                    log: Callable[[str], None] | None = None, workers: int | None = None) -> Resolution:
    """Resolve the ``auto`` speed knobs of one fit.

    Args:
        plugin, arch, image_size, device: what the cache is keyed by (with the torch version and
            the candidate space).
        requested: knob → ``"auto"`` or a fixed value (from the plugin's config).
        options: knob → values ``auto`` may take on this device (safe value first or not).
        trial: ``trial(variant, n)`` runs ``n`` training steps of ``variant`` and returns each
            step's seconds (synchronised); it must leave the caller's RNG state untouched. A
            trial that pickles (a :class:`PluginTrial`) also compiles candidates ahead in other
            processes.
        total_steps: training steps of the fit (the trial runs only when it costs at most
            ``share`` of them, and of their time as estimated from the first candidate).
        steps, warmup: timed steps per candidate (at least; more when steps are fast: about
            ``TIMED_SECONDS`` of them, at most ``MAX_TIMED_STEPS``), after ``warmup`` untimed
            ones (compile candidates get 2 more warm-up steps, CUDA-graph candidates 4).
        recorded: the ``speed`` record of the run being resumed.
        use_cache: read and write ``autotune.json``.
        workers: processes compiling candidates side by side (default
            :func:`precompile_workers`; 1 = compile each in turn, in this process).

    Returns:
        the :class:`Resolution` (variant, source, key, timings).
    """
    say = log or (lambda msg: None)
    space = candidate_space(requested, options)
    key = cache_key(plugin=plugin, arch=arch, image_size=image_size, device=device, space=space)
    if recorded is not None:
        rec = Resolution.from_record(recorded)
        return Resolution(_merge_recorded(rec.variant, space), "resume", key, rec.timings_ms)
    n_cands = sum(len(v) - 1 for v in space.values()) + 1
    if n_cands == 1:
        return Resolution(_safe_of(space), "fixed", key)
    mode = os.environ.get("AUGENGINE_AUTOTUNE", "on").lower()
    if mode not in ("on", "off", "retune"):
        raise ConfigError(f"environment variable AUGENGINE_AUTOTUNE: expected on, off or retune, got {mode!r}")
    if use_cache and mode != "retune":
        hit = _lookup(key)
        if hit is not None:
            try:
                return Resolution(Variant.from_dict(hit["variant"]), "cache", key, dict(hit.get("timings_ms") or {}))
            except (ConfigError, KeyError, TypeError):
                pass  # an entry of another engine version: measure again
    safe = _safe_of(space)
    per_cand = warmup + steps
    if mode == "off" or trial is None or n_cands * per_cand > share * total_steps:
        return Resolution(safe, "default", key)
    if workers is None:
        workers = precompile_workers()
    if workers > 1 and not _picklable(trial):
        workers = 1
    res = _trial_search(space, trial, steps, warmup, share, total_steps, say, workers)
    # the candidates' networks, graphs and activations are garbage now: collected and their free
    # pages handed back, the fit's steps do not run amid them (at 256 px the CycleGAN fit after a
    # full trial ran 1.06× the same variant in a fresh process without this, 1.01× with it)
    release_free_memory()
    res.key = key
    if use_cache:
        _store(key, res)
    return res


def _warm_steps(v: Variant, warmup: int) -> int:
    """Untimed steps before a candidate's timed ones: compiled candidates compile in their first
    steps (and recompile once a second input shape or requires_grad state shows up); CUDA graphs
    warm up eagerly, then record, then replay."""
    return warmup + (2 if v.compile else 0) + (2 if v.cudagraphs else 0)


def _trial_search(space, trial: Trial, steps: int, warmup: int, share: float, total_steps: int, say,
                  workers: int = 1) -> Resolution:
    timings: dict[str, float | None] = {}
    spent = 0.0
    timed = steps  # raised once the first candidate's step time is known (below)
    # what a compiled candidate is expected to spend compiling: assumed until one has compiled,
    # then the longest measured (an H200 machine took ~75 s per CycleGAN variant at 256 px, a
    # 2-core CPU ~50 s; a graph compiled before is a cache hit of a few seconds)
    compile_times: list[float] = []
    precompiled: set[str] = set()  # compiled ahead in other processes: this one loads their code
    sent_ahead: set[str] = set()  # given to other processes once (a failure there compiles here)
    hit_times: list[float] = []  # what loading precompiled code took here
    round_times: list[float] = []  # wall seconds of one round of compiles side by side

    def measure(v: Variant) -> float | None:
        nonlocal spent
        if v.label in timings:
            return timings[v.label]
        w = _warm_steps(v, warmup)
        t0 = time.perf_counter()
        try:
            secs = list(trial(v, w + timed))
        except Exception as e:  # a variant that fails here (no compiler for torch.compile, …) is not chosen
            say(f"autotune: {v.label} failed in the trial ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
            timings[v.label] = None
            spent += time.perf_counter() - t0
            return None
        finally:
            if v.compile:
                # each trial compiles fresh networks of one class: their compiled code stays cached
                # under the same code objects until TorchDynamo's recompile limit sends later
                # compiles (the next candidate, then the fit itself) back to eager mode — the fit
                # ran 12 % slower than the same variant fixed. Start every compile afresh.
                torch.compiler.reset()
        ms = statistics.median(secs[w:] or secs) * 1000.0
        if v.compile:
            (hit_times if v.label in precompiled else compile_times).append(
                max(0.0, sum(secs[:w]) - w * ms / 1000.0))
        if timings:
            spent += time.perf_counter() - t0
        else:
            # the first candidate's warm-up also pays what the process pays once whatever runs
            # first (CUDA context, cuDNN/oneDNN set-up, allocator growth): seconds on a GPU, which
            # the fit would pay without a trial. Charge it at its steady-state step time.
            spent += (w + timed) * ms / 1000.0
        timings[v.label] = round(ms, 3)
        say(f"autotune: {v.label} {ms:.1f} ms/step")
        return ms

    def compile_cost() -> float:
        return max(compile_times, default=COMPILE_COST_S)

    def hit_cost() -> float:
        return max(hit_times, default=CACHE_HIT_S)

    def precompile_ahead(ahead: list[Variant], step_s: float) -> None:
        """Compile the first of ``ahead`` side by side: one round (``workers`` of them), if the
        budget allows it. One round at a time: when one of them wins, the candidates after it
        change (they are the new best's neighbours), and compiling the old ones would be wasted."""
        nonlocal spent
        per_round = max(round_times, default=compile_cost() * PARALLEL_ROUND_FACTOR)
        per_cand = hit_cost() + step_s
        chosen = ahead[:_workers_memory_allows(workers)]
        while chosen and spent + per_round + len(chosen) * per_cand > budget:
            chosen.pop()
        if len(chosen) < 2:
            return  # one candidate compiles as fast here, and is timed in the same go
        say(f"autotune: compiling {', '.join(v.label for v in chosen)} side by side ({len(chosen)} processes)")
        sent_ahead.update(v.label for v in chosen)
        t0 = time.perf_counter()
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()  # the processes need GPU memory that this one keeps cached
        failed = _precompile(trial, [(v, _warm_steps(v, warmup)) for v in chosen], workers,
                             timeout=max(600.0, 5 * per_round))
        wall = time.perf_counter() - t0
        spent += wall
        round_times.append(wall)
        for v in chosen:
            if v.label in failed:
                say(f"autotune: {v.label} failed to compile ahead ({failed[v.label]}); compiling it here")
            else:
                precompiled.add(v.label)

    best = _safe_of(space)
    best_ms = measure(best)
    if best_ms is None:
        return Resolution(best, "default", timings_ms=timings)
    budget = share * total_steps * best_ms / 1000.0
    # a GPU step of a few tens of milliseconds varies by ±20 % from step to step (host jitter,
    # launch queues): time fast steps for about a second, so that the medians compare variants
    # rather than noise (3 steps of a CPU step of seconds are already long enough)
    timed = max(steps, min(MAX_TIMED_STEPS, math.ceil(TIMED_SECONDS / max(best_ms / 1000.0, 1e-6))))

    def visit(changes: list[dict[str, Any]]) -> None:
        """Measure the best so far with each of ``changes`` applied, in turn; a faster one becomes
        the best at once (the changes after it apply to the new best)."""
        nonlocal best, best_ms
        for i, change in enumerate(changes):
            cand = replace(best, **change)
            if cand == best or cand.label in timings:  # measured (or failed, or skipped) before
                continue
            step_s = (warmup + timed) * best_ms / 1000.0
            if cand.compile and cand.label not in sent_ahead and workers > 1:
                # the compiled candidates still ahead in this pass (as the best stands now)
                ahead: dict[str, Variant] = {}
                for change2 in changes[i:]:
                    c2 = replace(best, **change2)
                    if c2.compile and c2 != best and c2.label not in timings and c2.label not in sent_ahead:
                        ahead.setdefault(c2.label, c2)
                precompile_ahead(list(ahead.values()), step_s)
            if cand.compile:
                extra = hit_cost() if cand.label in precompiled else compile_cost()
            else:
                extra = 0.0
            if spent + extra + step_s > budget:
                say(f"autotune: {cand.label} not tried (trial budget of {budget:.0f} s spent)")
                timings[cand.label] = None
                continue
            ms = measure(cand)
            if ms is not None and ms < best_ms:
                best, best_ms = cand, ms

    flips = [{knob: value} for knob in KNOBS for value in space[knob]]
    while True:
        # coordinate descent: one knob at a time from the best so far, and passes over the knobs
        # until one changes nothing: knobs interact (channels_last loses in eager mode on some CPUs
        # and wins once torch.compile fuses the norms), so a winner found late reopens the others
        for _ in range(len(KNOBS)):
            start = best
            visit(flips)
            if best == start:
                break
        # near ties: flips that lost to the best by less than NEAR_TIE can still win together
        # (see NEAR_TIE): try them in pairs, then descend again from a pair that wins
        near = [f for f in flips if (c := replace(best, **f)) != best and timings.get(c.label) is not None
                and timings[c.label] <= best_ms * (1.0 + NEAR_TIE)]
        pairs = [{**a, **b} for i, a in enumerate(near) for b in near[i + 1:] if a.keys() != b.keys()]
        if any(replace(best, **p).label not in timings for p in pairs):
            say(f"autotune: {', '.join(replace(best, **f).label for f in near)} within {NEAR_TIE:.0%} of "
                f"{best.label}: trying them together")
        start = best
        visit(pairs)
        if best == start:
            break
    return Resolution(best, "trial", timings_ms=timings)


# -- compiling ahead, in other processes -----------------------------------------------------------
def precompile_workers() -> int:
    """Processes that compile trial candidates side by side: ``$AUGENGINE_AUTOTUNE_WORKERS``, else
    a third of this process's intra-op threads (its share of the cores: a bench job's worker
    gets fewer), at least 2, at most 8; 1 for a process of one thread, and where torch.compile's
    on-disk caches are off (nothing would carry over)."""
    env = os.environ.get("AUGENGINE_AUTOTUNE_WORKERS")
    if env is not None:
        try:
            n = int(env)
        except ValueError:
            n = -1
        if n < 1:
            raise ConfigError(f"environment variable AUGENGINE_AUTOTUNE_WORKERS: expected a whole number ≥ 1, got {env!r}")
        return n
    try:
        from torch._functorch import config as aot_config
        from torch._inductor import config as inductor_config

        if not (inductor_config.fx_graph_cache and aot_config.enable_autograd_cache):
            return 1
    except (ImportError, AttributeError):
        return 1
    threads = torch.get_num_threads()
    return min(8, max(2, threads // 3)) if threads >= 2 else 1


def _mem_available() -> int | None:
    """Bytes of memory available for new processes (Linux ``MemAvailable``), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _workers_memory_allows(workers: int) -> int:
    """``workers``, or fewer where each compiling process, taken to need as much memory as this
    process's peak so far (it has compiled and run a candidate by then), would not fit in 80 % of
    the available memory: better compile in turn than have the OOM killer pick a process."""
    avail = _mem_available()
    if avail is None:
        return workers
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return max(1, min(workers, int(0.8 * avail) // max(peak, 1 << 30)))


def _picklable(trial: Any) -> bool:
    try:
        pickle.dumps(trial)
    except Exception:
        return False
    return True


def _torch_settings() -> dict[str, Any]:
    """The process-wide settings a compiled graph (and so its cache key) may depend on."""
    return {"deterministic": torch.are_deterministic_algorithms_enabled(),
            "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic, "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32, "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(), "threads": torch.get_num_threads()}


def _apply_torch_settings(s: Mapping[str, Any]) -> None:
    """Take over the settings ``s`` of :func:`_torch_settings` where this process differs. Only
    where it differs: setting a flag to the value it has by default can still change a cache key
    (an explicitly set TF32 flag is another precision setting than the default one), and then
    nothing compiled here would be found there."""
    now = _torch_settings()
    if (now["deterministic"], now["deterministic_warn_only"]) != (s["deterministic"], s["deterministic_warn_only"]):
        torch.use_deterministic_algorithms(s["deterministic"], warn_only=s["deterministic_warn_only"])
    if now["cudnn_deterministic"] != s["cudnn_deterministic"]:
        torch.backends.cudnn.deterministic = s["cudnn_deterministic"]
    if now["cudnn_benchmark"] != s["cudnn_benchmark"]:
        torch.backends.cudnn.benchmark = s["cudnn_benchmark"]
    if now["cudnn_tf32"] != s["cudnn_tf32"]:
        torch.backends.cudnn.allow_tf32 = s["cudnn_tf32"]
    if now["matmul_tf32"] != s["matmul_tf32"]:
        torch.backends.cuda.matmul.allow_tf32 = s["matmul_tf32"]
    if now["float32_matmul_precision"] != s["float32_matmul_precision"]:
        torch.set_float32_matmul_precision(s["float32_matmul_precision"])
    # the same thread count even though the processes share the cores: inductor's CPU kernels are
    # generated for it, and it is part of their cache key (another count would be a cache miss)
    if now["threads"] != s["threads"]:
        torch.set_num_threads(s["threads"])


def _precompile_child() -> None:
    """Body of a compiling process (``python -c``): read the job from stdin and run its warm-up
    steps, compiling the variant into the on-disk caches."""
    import sys

    job = pickle.loads(sys.stdin.buffer.read())  # the plugin's class is imported by name: PYTHONPATH
    _apply_torch_settings(job["settings"])
    job["trial"](job["variant"], job["steps"])


def _precompile(trial: Trial, jobs: Sequence[tuple[Variant, int]], workers: int,
                timeout: float = 3600.0) -> dict[str, str]:
    """Run each ``(variant, steps)`` warm-up in its own fresh Python process (not a fork: CUDA
    state does not survive one), ``workers`` at a time. Returns the variants that failed there,
    label → why (they compile in the trial instead)."""
    import subprocess
    import sys
    import tempfile

    settings = _torch_settings()
    failed: dict[str, str] = {}
    waiting = list(jobs)
    running: list[tuple[Variant, subprocess.Popen, Any, float]] = []
    code = "from augengine.autotune import _precompile_child; _precompile_child()"
    # this process's import path, so that the other one imports augengine and the plugin's class
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                v, steps = waiting.pop(0)
                payload = pickle.dumps({"trial": trial, "variant": v, "steps": steps, "settings": settings})
                err = tempfile.TemporaryFile()
                try:
                    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                            stdout=subprocess.DEVNULL, stderr=err, env=env)
                    proc.stdin.write(payload)
                    proc.stdin.close()
                except OSError as e:
                    err.close()
                    failed[v.label] = f"{type(e).__name__}: {e}"
                    continue
                running.append((v, proc, err, time.monotonic()))
            for item in list(running):
                v, proc, err, t0 = item
                rc = proc.poll()
                if rc is None and time.monotonic() - t0 > timeout:
                    proc.kill()
                    rc = proc.wait()
                    failed[v.label] = f"still compiling after {timeout:.0f} s"
                if rc is None:
                    continue
                running.remove(item)
                if rc != 0 and v.label not in failed:
                    err.seek(0)
                    lines = [ln for ln in err.read().decode(errors="replace").splitlines() if ln.strip()]
                    failed[v.label] = f"exit code {rc}: {lines[-1][:160] if lines else 'no message'}"
                err.close()
            if running:
                time.sleep(0.2)
    finally:
        for v, proc, err, _ in running:  # interrupted: leave no compiling process behind
            proc.kill()
            proc.wait()
            err.close()
    return failed


class PluginTrial:
    """A plugin's trial method as a trial callable that also runs in another process.

    In this process it calls ``getattr(plugin, method)(variant, n, *args)`` on the plugin itself;
    pickled (for compiling candidates ahead in other processes), it carries the plugin's class,
    config and device, and the other process calls the method on a new instance of that class made
    from the config. The method must depend on nothing else of the instance (as trials on
    throwaway networks do).
    """

    def __init__(self, plugin: Any, method: str = "_trial", *args: Any):
        self._plugin = plugin
        self.cls = type(plugin)
        self.config = plugin.config.model_dump(mode="json")
        self.device = str(plugin.device)
        self.method, self.args = method, args

    def __call__(self, v: Variant, n: int) -> Sequence[float]:
        plugin = self._plugin
        if plugin is None:  # in another process
            plugin = self._plugin = self.cls(self.config)
            plugin.device = torch.device(self.device)
        return getattr(plugin, self.method)(v, n, *self.args)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_plugin": None}


def timed_steps(step: Callable[[int], Any], n: int, device: torch.device | str) -> list[float]:
    """Run ``step(i)`` for ``i < n`` and return each one's seconds (CUDA synchronised) — the body
    of most plugins' ``trial`` functions."""
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        step(i)
        sync()
        out.append(time.perf_counter() - t0)
    return out


__all__.append("timed_steps")
