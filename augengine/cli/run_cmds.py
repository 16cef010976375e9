"""The verbs that run plugins: ``fit``, ``generate``, ``filter``, ``evaluate``.

They are generic: each resolves a plugin by name (``acgan`` or ``generator:acgan``), builds
its config (defaults < ``--config`` < ``-o``), loads data through :mod:`augengine.data`, and
calls the plugin's public API — the same calls a user makes from Python.
"""

from __future__ import annotations

from pathlib import Path

import click

from augengine.cli.common import (
    build_plugin_config,
    common_options,
    config_options,
    data_options,
    load_data_split,
    parse_amount,
    parse_per_class,
    pick_subset,
    with_example,
)
from augengine.errors import DataError
from augengine.registry import get_plugin_class, load_run, resolve_name
from augengine.runs import atomic_write_json, read_run_record


@click.command("fit")
@click.argument("name")
@data_options
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@config_options
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint (same config and seed).")
@click.option("--force", is_flag=True, help="Replace the run in --out: its files are removed first.")
@click.option("--synthetic", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Classifiers: SyntheticSet(s) to add to the real training split.")
@click.option("--amount", help="Classifiers: synthetic images to add, a count (500) or a ratio of the real set (0.25).")
@click.option("--resample-like", "resample_like", type=click.Path(dir_okay=False, path_type=Path),
              help="Classifiers: the resampling control of a SyntheticSet: add its class counts as real training "
                   "images drawn with replacement (instead of its images).")
@click.option("--resample-seed", type=int, default=0, show_default=True,
              help="With --resample-like: the draw (keep it fixed across classifier --seed values).")
@common_options
@with_example("augengine fit acgan --data demo --out runs/acgan -o image_size=32 -o iterations=200\n"
              "augengine fit resnet --data demo --out runs/clf -o arch=resnet18 -o image_size=64\n"
              "augengine fit resnet --data demo --out runs/control -o arch=resnet18 --resample-like acgan.h5")
def fit_command(name, data, split_path, split_seed, out, config_file, overrides, resume, force, synthetic, amount,
                resample_like, resample_seed, seed, device):
    """Train a generator or a classifier plugin on the real training split.

    An --out that holds a run needs --resume (same config and seed) or --force (start over)."""
    kind, pname = resolve_name(name)
    if kind not in ("generator", "classifier"):
        raise DataError(f"fit {name}: {kind} plugins are not trained; expected a generator or a classifier")
    cls = get_plugin_class(kind, pname)
    config = build_plugin_config(cls, config_file, overrides, device)
    if resume and not (out / "run.json").exists():
        click.echo(f"note: --resume given but {out} holds no run; starting a new run", err=True)
    if kind == "generator" and (synthetic or amount or resample_like):
        raise DataError("--synthetic/--amount/--resample-like: only classifiers train on added images")
    table, split = load_data_split(data, split_path, split_seed)
    plugin = cls(config)
    click.echo(f"fit {kind}:{pname} on {len(split.train)} training images → {out}", err=True)
    # the engine applies the run-directory rule and seeds (isolated from this process) inside fit
    if kind == "generator":
        plugin.fit(split.train, val=split.val, run_dir=out, resume=resume, force=force, seed=seed)
    else:
        from augengine.synthetic import SyntheticSet

        sets = [SyntheticSet.open(p) for p in synthetic]
        control = None
        if resample_like is not None:
            import augengine as ae

            if synthetic or amount:
                raise DataError("--resample-like: not with --synthetic/--amount (it adds the class counts of the "
                                "whole set, as real images)")
            sets = [ae.resample_like(split.train, SyntheticSet.open(resample_like), seed=resample_seed)]
            control = {"set": str(resample_like), "seed": resample_seed,
                       "class_counts": {k: v for k, v in sets[0].class_counts().items() if v}}
            click.echo(f"resampling control: {len(sets[0])} real training images drawn like {resample_like} "
                       f"{control['class_counts']}", err=True)
        plugin.fit(split.train, val=split.val, synthetic=sets, amount=parse_amount(amount), run_dir=out,
                   resume=resume, force=force, seed=seed)
    plugin.save(out)
    record = read_run_record(out)
    record.update({"data": str(data), "split_sha256": split.sha256(), "split_file": str(split_path or ""),
                   "split_seed": split_seed, "seed": seed})
    if kind == "classifier" and control is not None:
        record["resample_like"] = control
    atomic_write_json(out / "run.json", record)
    click.echo(str(out))


@click.command("generate")
@click.argument("name")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory from 'augengine fit'.")
@click.option("--n", "n", type=int, help="Number of images (noise generators: split over classes; translators: source images).")
@click.option("--per-class", help="Exact counts per class, e.g. MEL=500,NV=200 (noise generators).")
@click.option("--class-distribution", type=click.Choice(["train", "uniform"]), default="train", show_default=True)
@click.option("--source", "source_data", help="Translators: the dataset to translate from (path or 'demo').")
@click.option("--source-class", help="Translators: translate only images of this class (e.g. NV).")
@click.option("--split", "split_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of --source's default split.")
@click.option("--subset", default="train", show_default=True, help="Translators: which split of --source.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="SyntheticSet .h5 file.")
@click.option("--resume", is_flag=True, help="Continue an interrupted set (<out>.partial.h5).")
@click.option("--force", is_flag=True, help="Overwrite a finished set.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@common_options
@with_example("augengine generate acgan --run runs/acgan --n 500 --out acgan.h5\n"
              "augengine generate cyclegan --run runs/nv2mel --source demo --source-class NV --n 200 --out mel.h5")
def generate_command(name, run_dir, n, per_class, class_distribution, source_data, source_class, split_path, split_seed, subset,
                     out, resume, force, batch_size, seed, device):
    """Write a SyntheticSet with a trained generator."""
    kind, pname = resolve_name(name, "generator")
    record = read_run_record(run_dir)
    if record.get("name") != pname:
        raise DataError(f"--run {run_dir}: holds a {record.get('kind')} '{record.get('name')}' run, not '{pname}'")
    gen = load_run(run_dir, kind="generator", device=None if device == "auto" else device)
    source = None
    if gen.mode == "translate":
        if source_data is None:
            raise DataError(f"generator {pname!r} translates images: give --source DATA (and --source-class)")
        _, split = load_data_split(source_data, split_path, split_seed)
        source = pick_subset(split, subset)
    elif n is None and not per_class:
        raise DataError("--n or --per-class: say how many images to generate")
    out_set = gen.generate(n, out=out, seed=seed, per_class=parse_per_class(per_class),
                           class_distribution=class_distribution, source=source, source_class=source_class,
                           resume=resume, force=force, batch_size=batch_size)
    click.echo(f"{out}: {len(out_set)} images {out_set.class_counts()}", err=True)
    click.echo(str(out))


@click.command("filter")
@click.argument("name")
@click.option("--classifier", "classifier_run", type=click.Path(file_okay=False, path_type=Path),
              help="Classifier run that scores the images.")
@click.option("--input", "input_set", type=click.Path(dir_okay=False, path_type=Path), help="A SyntheticSet to filter.")
@data_options
@click.option("--subset", default="train", show_default=True, help="With --data: which split to select from.")
@click.option("--class", "target_class", help="Target class (e.g. MEL).")
@config_options
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="selection.json (with --data) or a filtered .h5 set (with --input).")
@click.option("--force", is_flag=True)
@common_options
@with_example("augengine filter path-rank --classifier runs/clf --data demo --class MEL -o alpha=0.25 --out sel.json\n"
              "augengine filter path-rank --classifier runs/clf --input mel.h5 --class MEL -o alpha=0.5 --out mel-top.h5")
def filter_command(name, classifier_run, input_set, data, split_path, split_seed, subset, target_class, config_file, overrides,
                   out, force, seed, device):
    """Keep the top of a set (or of a real class) by a filter's score."""
    from augengine.selection import selection_record, write_filtered_set, write_selection
    from augengine.synthetic import SyntheticSet

    kind, pname = resolve_name(name, "filter")
    cls = get_plugin_class(kind, pname)
    flt = cls(build_plugin_config(cls, config_file, overrides, device))
    dev = None if device == "auto" else device
    clf = load_run(classifier_run, kind="classifier", device=dev) if classifier_run else None
    if input_set is not None:
        images = SyntheticSet.open(input_set)
    else:
        _, split = load_data_split(data, split_path, split_seed)
        images = pick_subset(split, subset)
    scores = flt.score(images, classifier=clf, target_class=target_class)
    keep = flt.select(images, classifier=clf, target_class=target_class, seed=seed, scores=scores)
    cfg = flt.config.model_dump(mode="json")
    if input_set is not None:
        res = write_filtered_set(images, keep, scores, out, filter_name=pname, filter_config=cfg,
                                 filter_info=flt.info(), force=force)
        click.echo(f"{out}: kept {len(res)} of {len(images)} images", err=True)
    else:
        if out.exists() and not force:
            raise DataError(f"{out}: exists; use --force to overwrite it")
        write_selection(out, selection_record(
            images, keep, scores, filter_name=pname, filter_config=cfg, target_class=target_class, seed=seed,
            info=flt.info(), classifier_run=str(classifier_run) if classifier_run else None, data=str(data),
            subset=subset))
        click.echo(f"{out}: kept {len(keep)} images", err=True)
    click.echo(str(out))


@click.command("evaluate")
@click.argument("name")
@click.option("--classifier", "classifier_runs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Classifier run(s); several = several seeds of one arm.")
@click.option("--baseline", "baseline_runs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Baseline classifier run(s) (no synthetic data), paired by seed.")
@click.option("--set", "set_path", type=click.Path(dir_okay=False, path_type=Path), help="A SyntheticSet (set-quality).")
@data_options
@click.option("--subset", default="test", show_default=True)
@click.option("--test-data", multiple=True, help="External test set(s), any supported format; reported apart.")
@config_options
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), help="Write metrics.json, tables, figures here.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics as JSON.")
@common_options
@with_example("augengine evaluate benefit --classifier runs/clf-synth --baseline runs/clf-real --data demo --out eval/")
def evaluate_command(name, classifier_runs, baseline_runs, set_path, data, split_path, split_seed, subset, test_data, config_file,
                     overrides, out, as_json, seed, device):
    """Metrics with confidence intervals (and a verdict against a baseline)."""
    import augengine.data as D
    from augengine.synthetic import SyntheticSet

    kind, pname = resolve_name(name, "evaluator")
    cls = get_plugin_class(kind, pname)
    ev = cls(build_plugin_config(cls, config_file, overrides, device))
    table, split = load_data_split(data, split_path, split_seed)
    for r in (*classifier_runs, *baseline_runs):
        _check_same_split(r, split)
    dev = None if device == "auto" else device
    clfs = [load_run(r, kind="classifier", device=dev) for r in classifier_runs]
    base = [load_run(r, kind="classifier", device=dev) for r in baseline_runs]
    from augengine.naming import dataset_names

    # each external set is named by a safe, unique slug of its folder name (or, for a dataset spec
    # .toml, its display name: as the bench names it); a path never becomes part of an output file
    # name; the path it came from is printed here and kept in the metrics
    external, external_paths = {}, {}
    for p, set_name in zip(test_data, dataset_names(test_data)):
        external_paths[set_name] = p
        t = D.load_dataset(p)
        external[set_name] = t.image_set()
        click.echo(f"external test set {set_name!r}: {p}", err=True)
    result = ev.evaluate(
        (clfs[0] if len(clfs) == 1 else clfs) if clfs else None,
        pick_subset(split, subset),
        baseline=(base[0] if len(base) == 1 else base) if base else None,
        synthetic=SyntheticSet.open(set_path) if set_path else None,
        train=split.train,
        external=external or None,
        seed=seed,
    )
    if external_paths:
        result.metrics["external_sets"] = dict(external_paths)
    if out is not None:
        result.save(out)
    if as_json:
        click.echo(result.to_json())
    else:
        for t in result.tables.values():
            click.echo(t.rstrip() + "\n")
        shown = "\n".join(result.tables.values())
        for v in result.verdicts:
            if v not in shown:
                click.echo(v)


def _check_same_split(run_dir: Path, split) -> None:
    """A classifier evaluated on another split than it was trained on may have seen the test images."""
    rec = read_run_record(run_dir)
    trained_on = rec.get("split_sha256")
    if trained_on and trained_on != split.sha256():
        raise DataError(f"{run_dir}: trained on another split (split_sha256 {trained_on[:12]}…, here "
                        f"{split.sha256()[:12]}…); its test images may be training images: pass the same "
                        "--split file or --split-seed it was trained with")


def register(main: click.Group) -> None:
    for cmd in (fit_command, generate_command, filter_command, evaluate_command):
        main.add_command(cmd)
