"""``augengine bench``: the whole flow over a grid of arms, amounts and seeds, as cached units.

Python use::

    from augengine.bench import Bench, load_bench_config
    cfg = load_bench_config(preset="quick", overrides=["amounts=[0.25]"])
    summary = Bench(cfg, "bench-results/run1").run()     # writes results.jsonl, tables, report.html
"""

from augengine.bench.config import PRESETS, BenchConfig, load_bench_config
from augengine.bench.graph import Plan, Unit, build_plan
from augengine.bench.report import write_report
from augengine.bench.runner import Bench, BenchData, RunSummary, default_loader

__all__ = ["Bench", "BenchConfig", "BenchData", "PRESETS", "Plan", "RunSummary", "Unit", "build_plan",
           "default_loader", "load_bench_config", "write_report"]
