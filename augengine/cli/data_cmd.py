"""``augengine data inspect`` and ``augengine data split``."""

from __future__ import annotations

import json
import sys
import warnings

import click

from augengine.cli.common import common_options, dataset_args, dataset_options, verbose_option
__all__ = ["data", "register"]


@click.group("data")
def data():
    """Look at a dataset and split it (HAM10000, ISIC 2019/2018/2020, PH2, any spreadsheet, class folders,
    MedMNIST .npz, demo)."""


@data.command("inspect")
@click.argument("path", default="demo")
@dataset_options(short_option=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--strict", is_flag=True, help="Exit non-zero on warnings too (duplicates, conversions, …).")
@verbose_option
def inspect_cmd(path, as_json, strict):
    """Format, per-class counts, label mapping, lesions/patients, sizes/modes and every problem of PATH.

    Problems are counted by kind before they are listed. Exit 0 when the set is usable
    (warnings are handled), 1 when it is not.

    \b
    Example:
      augengine data inspect ../shared/data/ham10000
      augengine data inspect ISIC2018/ -o part=Test
      augengine data inspect isic2020/ -o labels=binary --json
      augengine data inspect clinic/ --csv export.csv --image-col file --label-col dx --group-col patient
    """
    from augengine.data.inspect import format_report, inspect_dataset

    rep = inspect_dataset(path, progress=sys.stderr.isatty(), **dataset_args())
    click.echo(json.dumps(rep, indent=1) if as_json else format_report(rep))
    if not rep["usable"] or (strict and rep["n_warnings"]):
        sys.exit(1)


@data.command("split")
@click.argument("path", default="demo")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Split file to write (JSON).")
@click.option("--fractions", default="0.8,0.1,0.1", show_default=True, help="train,val,test fractions (sum 1).")
@click.option("--group-by", type=click.Choice(["auto", "lesion", "none"]), default="auto", show_default=True,
              help="auto: by lesion when the data knows lesions.")
@dataset_options(short_option=True)
@click.option("--force", is_flag=True, help="Replace an existing split file (runs trained on it no longer match it).")
@common_options
def split_cmd(path, out, fractions, group_by, seed, device, force):
    """Write a stratified (lesion-grouped where known) train/val/test split file.

    An existing --out is kept unless --force is given.

    \b
    Example:
      augengine data split ../shared/data/ham10000 --out split.json --seed 0
      augengine data split demo --out demo-split.json --fractions 0.7,0.15,0.15
    """
    from augengine.data import load_dataset, parse_fractions, split
    from augengine.rundir import check_output_file

    fr = parse_fractions(fractions)
    check_output_file(out, force=force, what="split file")
    table = load_dataset(path, **dataset_args())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the straddling count is printed below
        sp = split(table, fr, group_by=group_by, seed=seed)
    sp.save(out)
    counts = sp.counts()
    click.echo(f"{out}: {len(table):,} images of {table.format} ({table.fingerprint[:12]}), seed {seed}, "
               f"fractions {','.join(f'{x:g}' for x in fr)}, grouped by {sp.group_by}")
    width = max(len(c) for c in table.class_names)
    click.echo(f"  {'class':<{width}} {'train':>7} {'val':>7} {'test':>7}")
    for c in table.class_names:
        click.echo(f"  {c:<{width}} {counts['train'][c]:>7,} {counts['val'][c]:>7,} {counts['test'][c]:>7,}")
    click.echo(f"  {'total':<{width}} {len(sp.train):>7,} {len(sp.val):>7,} {len(sp.test):>7,}")
    if sp.straddling is not None:
        if sp.straddling:
            click.echo(f"warning: grouping is off: {sp.straddling:,} of {table.num_groups:,} lesions have images in "
                       "more than one split (metrics will be inflated; use --group-by lesion)", err=True)
        else:
            click.echo(f"  no lesion is in two splits ({table.num_groups:,} lesions)")


def register(main: click.Group) -> None:
    """Attach the ``data`` group to the main ``augengine`` command."""
    main.add_command(data)

