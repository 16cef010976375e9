"""``augengine bench`` and ``augengine report``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from augengine.cli.common import dataset_args, dataset_options, verbose_option, with_example


@click.command("bench")
@click.argument("config_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--preset", type=click.Choice(["quick", "paper-exp1", "paper-exp2"]),
              help="A built-in config (default: quick when no CONFIG file is given).")
@click.option("-o", "--option", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Set a bench config field (dotted keys, TOML values), e.g. -o amounts=[500,1000]. Repeatable.")
@click.option("--data", help="Dataset path or 'demo' (overrides the config's data); read as --format, --csv, … "
                              "say (they apply to the config's data without --data).")
@dataset_options
@click.option("--test-data", multiple=True, help="External test set(s), reported apart: a dataset path or a dataset "
                                                 "spec .toml (for a spreadsheet). Repeatable.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (default: ./bench-results/<timestamp>/).")
@click.option("--resume", is_flag=True, help="Continue an interrupted bench in --out (running it again does the same).")
@click.option("--force", is_flag=True, help="Run in an --out that holds another config (matching units are reused).")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Parallel worker processes for independent units (ray: CPUs of the local cluster it starts).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where units run: this machine, or tasks of a Ray cluster (pip install 'augengine[ray]').")
@click.option("--ray-address", metavar="auto|HOST:PORT",
              help="Ray cluster to use with --executor ray (default: start a local one).")
@click.option("--dry-run", is_flag=True, help="Print the plan (units, cached or not) and its estimate per unit kind (work, hours here, disk, reference GPU-hours; throughputs measured once per machine) and exit.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Device handed to plugins with a device field.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@verbose_option
@with_example("augengine bench                          # quick preset on the demo set\n"
              "augengine bench --preset paper-exp2 --data ../shared/data/ham10000 --dry-run\n"
              "augengine bench my.toml -o amounts=[500] --out runs/b1 --jobs 2\n"
              "augengine bench my.toml --out /shared/b1 --executor ray --ray-address auto   # on a cluster")
def bench(config_file, preset, overrides, data, test_data, out, resume, force, jobs, executor, ray_address, dry_run,
          device, no_progress):
    """The whole flow over a grid of arms × amounts × seeds, as cached, resumable units; ends with report.html."""
    from augengine.bench.config import load_bench_config
    from augengine.bench.runner import Bench
    from augengine.errors import ConfigError

    ov = list(overrides)
    if device is not None:
        ov.append(f'device="{device}"')
    cfg = load_bench_config(config_file, preset=preset, overrides=ov, data=data, test_data=test_data,
                            dataset_args=dataset_args())
    if out is None:
        if resume:
            raise ConfigError("--resume: give the --out directory of the bench to continue")
        out = Path("bench-results") / time.strftime("%Y%m%d-%H%M%S")
    if ray_address is not None and executor != "ray":
        raise ConfigError("--ray-address: only with --executor ray")
    opts = {"address": ray_address, "num_cpus": jobs if jobs > 1 else None} if executor == "ray" else None
    b = Bench(cfg, out, jobs=jobs, force=force, progress=not no_progress, executor=executor, executor_options=opts)
    if dry_run:
        click.echo(b.dry_run(log=lambda msg: click.echo(msg, err=True)))
        return
    click.echo(f"bench → {out}", err=True)
    summary = b.run()
    click.echo(f"bench: {summary.done}/{summary.total} units finished ({summary.ran} run now) in "
               f"{summary.seconds:.1f} s; results: {out / 'results.jsonl'}", err=True)
    if summary.failed:
        click.echo(f"bench: {len(summary.failed)} unit(s) failed: {', '.join(summary.failed)}; "
                   f"{len(summary.blocked)} unit(s) could not run: {_some(summary.blocked)}; "
                   f"see {out / 'report.html'}", err=True)
    elif summary.undone:
        click.echo(f"bench: {len(summary.undone)} unit(s) not done: {_some(summary.undone)}", err=True)
    verdicts = out / "verdicts.txt"
    if verdicts.exists():
        click.echo(verdicts.read_text().rstrip())
    click.echo(f"report: {out / 'report.html'}")
    if summary.exit_code:
        sys.exit(summary.exit_code)


def _some(labels: list[str], n: int = 10) -> str:
    return ", ".join(labels[:n]) + (f" … (+{len(labels) - n} more)" if len(labels) > n else "")


@click.command("report")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@verbose_option
@with_example("augengine report bench-results/20250101-120000")
def report(directory):
    """Write DIR/report.html (one self-contained file) from a bench directory (also a partly finished one)."""
    from augengine.bench.config import BenchConfig
    from augengine.bench.report import results_rows, tables_text, verdict_lines, write_report
    from augengine.errors import DataError
    from augengine.runs import atomic_write_text

    if not (directory / "bench.json").exists():
        raise DataError(f"{directory}: not a bench directory (no bench.json); make one with 'augengine bench'")
    import json

    rows = results_rows(directory)
    cfg = BenchConfig.model_validate(json.loads((directory / "bench.json").read_text())["config"])
    atomic_write_text(directory / "results.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    from augengine.bench.report import _class_names

    atomic_write_text(directory / "tables.txt", tables_text(rows, cfg, _class_names(directory)))
    atomic_write_text(directory / "verdicts.txt", "\n".join(verdict_lines(rows)) + "\n")
    path = write_report(directory)
    click.echo(str(path))


def register(main: click.Group) -> None:
    main.add_command(bench)
    main.add_command(report)
