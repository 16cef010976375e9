"""The ``acgan+cyclegan`` composition (the paper's Experiment 1), generic in both parts.

A noise generator (``source``, ACGAN by default) draws class-conditional samples; for each
class c one translator (``translator``, CycleGAN by default) is trained with X = source
samples of class c and Y = the real training images of class c. Generation draws from the
source and passes each image through the translator of its class.

Both parts are found by plugin name through the registry, so any noise generator and any
translator drop in. The translator protocol: ``fit(train, x=ImageSet, y=ImageSet, run_dir=,
resume=, seed=, progress=)`` learns X → Y, and ``translate(images, labels)`` returns images
of Y's class.

Run directory layout::

    RUN_DIR/run.json              the composition's record (parts, finished classes)
    RUN_DIR/source/               the source run (unless ``source_run`` reuses one)
    RUN_DIR/translators/<class>/  one translator run per class
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

import augengine as ae
from augengine import ConfigError, DataError, PluginError

from augengine.plugin_api import atomic_write_json, read_run_record, write_run_record

__all__ = ["SourceTranslatorComposition", "CompositionConfig"]


class CompositionConfig(ae.PluginConfig):
    """Configuration of :class:`SourceTranslatorComposition`."""

    image_size: int = Field(64, ge=4, description="image size of source and translators")
    source: str = Field("acgan", description="noise generator plugin name")
    translator: str = Field("cyclegan", description="translator plugin name")
    source_run: str | None = Field(None, description="reuse this trained source run directory")
    source_config: dict[str, Any] = Field(default_factory=dict, description="config of the source plugin")
    translator_config: dict[str, Any] = Field(default_factory=dict, description="config of each translator")
    samples_per_class: int = Field(1000, ge=1, description="source samples per class = translator domain X")
    device: str | None = Field(None, description="device for loading parts (None = their default)")


class SourceTranslatorComposition(ae.Generator):
    """ACGAN → per-class CycleGAN composition: source samples refined by a translator per class."""

    name = "acgan+cyclegan"
    mode = "noise"
    Config = CompositionConfig

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.source: ae.Generator | None = None
        self.translators: dict[int, ae.Generator] = {}

    # -- parts -------------------------------------------------------------------------
    def _check_parts(self) -> None:
        c = self.config
        src_cls = ae.get_plugin_class("generator", c.source)
        tr_cls = ae.get_plugin_class("generator", c.translator)
        if getattr(src_cls, "mode", "noise") != "noise":
            raise ConfigError(f"generator {self.name!r}: config key 'source': {c.source!r} is a translator; "
                              "expected a noise generator")
        if getattr(tr_cls, "mode", "noise") != "translate":
            raise ConfigError(f"generator {self.name!r}: config key 'translator': {c.translator!r} generates from "
                              "noise; expected a translator")

    def _part_config(self, extra: dict[str, Any]) -> dict[str, Any]:
        cfg = dict(extra)
        if cfg.get("image_size", self.image_size) != self.image_size:
            raise ConfigError(f"generator {self.name!r}: part image_size {cfg['image_size']} differs from "
                              f"image_size {self.image_size}")
        cfg["image_size"] = self.image_size
        return cfg

    @classmethod
    def work(cls, config, *, phase, n_images=0, class_counts=None, **context):
        """The parts' work: ``fit`` = the source's fit (unless ``source_run``), then per class with real
        images ``samples_per_class`` source samples and a translator fit; ``generate`` = the source's
        samples and one translation each. None when a part does not report its work."""
        c = cls.Config.model_validate(dict(config))
        src = ae.get_plugin_class("generator", c.source)
        tr = ae.get_plugin_class("generator", c.translator)
        src_cfg = src.Config.model_validate({**c.source_config, "image_size": c.image_size}).model_dump()
        tr_cfg = tr.Config.model_validate({**c.translator_config, "image_size": c.image_size}).model_dump()
        parts: list = []
        if phase == "fit":
            counts = dict(class_counts or {})
            if not c.source_run:
                parts.append(src.work(src_cfg, phase="fit", n_images=n_images, class_counts=counts))
            for name, n_real in counts.items():
                if n_real > 0:
                    parts.append(src.work(src_cfg, phase="generate", n_images=c.samples_per_class))
                    parts.append(tr.work(tr_cfg, phase="fit", n_images=max(c.samples_per_class, n_real)))
        elif phase == "generate":
            parts += [src.work(src_cfg, phase="generate", n_images=n_images),
                      tr.work(tr_cfg, phase="generate", n_images=n_images)]
        if any(p is None for p in parts):
            return None
        return [w for p in parts for w in p]

    def _record(self, run_dir: Path, source_dir: Path, done: list[str]) -> None:
        # a source inside the run directory is recorded relative to it, so the run can move
        src = Path(source_dir)
        if src.resolve().is_relative_to(Path(run_dir).resolve()):
            src = src.resolve().relative_to(Path(run_dir).resolve())
        write_run_record(run_dir, self, class_names=self.class_names, train_counts=self.train_counts,
                         source_dir=str(src), finished_classes=done,
                         translator_dirs={c: f"translators/{c}" for c in done})

    def fit(self, train: ae.ImageSet, *, val=None, run_dir=None, resume: bool = False, seed: int = 0,
            progress: bool = True, **inputs: Any) -> "SourceTranslatorComposition":
        """Train (or reuse) the source, then one translator per class, class by class.

        ``resume=True`` reuses a finished source and finished translators in ``run_dir`` and
        resumes the unfinished ones.

        Returns:
            ``self``.
        """
        if inputs:
            raise ConfigError(f"generator {self.name!r}: unknown fit inputs {sorted(inputs)}")
        c = self.config
        self._check_parts()
        run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="augengine-compose-"))
        run_dir.mkdir(parents=True, exist_ok=True)
        # the engine applied the run-directory rule: without resume the directory is new or cleared
        done: list[str] = []
        if resume and (run_dir / "run.json").exists():
            done = list(read_run_record(run_dir).get("finished_classes", []))

        # 1. source
        if c.source_run:
            source_dir = Path(c.source_run)
            self.source = ae.load_run(source_dir, kind="generator", device=c.device)
        else:
            source_dir = run_dir / "source"
            rec = source_dir / "run.json"
            if resume and rec.exists() and read_run_record(source_dir).get("composition_part_done"):
                self.source = ae.load_run(source_dir, kind="generator", device=c.device)
            else:
                self.source = ae.create_generator(c.source, **self._part_config(c.source_config))
                self.source.fit(train, val=val, run_dir=source_dir, resume=resume, seed=seed, progress=progress)
                self.source.save(source_dir)
                _mark_done(source_dir)
        if self.source.image_size != self.image_size:
            raise ConfigError(f"generator {self.name!r}: source run makes {self.source.image_size} px images, "
                              f"image_size is {self.image_size}")
        if list(self.source.class_names) != list(train.class_names):
            raise DataError(f"generator {self.name!r}: the source's classes {self.source.class_names} differ from "
                            f"the training data's {train.class_names}")
        self.class_names = list(train.class_names)
        self.train_counts = train.class_counts()
        self.run_dir = run_dir
        self._record(run_dir, source_dir, done)

        # 2. one translator per class with real images
        self.translators = {}
        for k, cname in enumerate(self.class_names):
            real_idx = np.flatnonzero(train.labels == k)
            if len(real_idx) == 0:
                continue
            tdir = run_dir / "translators" / cname
            if cname in done:
                self.translators[k] = ae.load_run(tdir, kind="generator", device=c.device)
                continue
            n = c.samples_per_class
            labels = np.full(n, k, dtype=np.int64)
            seeds = ae.image_seeds(seed + 7919 * (k + 1), n)
            xs = ae.ArrayImageSet(self.source.sample(labels, seeds), labels, self.class_names,
                                  ids=[f"source:{cname}:{i}" for i in range(n)])
            ys = train.subset(real_idx)  # a view: the translator decodes it at its own load size
            tr = ae.create_generator(c.translator, **self._part_config(c.translator_config))
            tr.fit(ys, x=xs, y=ys, run_dir=tdir, resume=resume, seed=seed + k, progress=progress)
            tr.save(tdir)
            self.translators[k] = tr
            done.append(cname)
            self._record(run_dir, source_dir, done)
        self._source_dir = source_dir
        return self

    # -- generation --------------------------------------------------------------------
    def sample(self, labels: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Source sample of each (label, seed), translated by the translator of its class.

        Shape:
            - labels, seeds: :math:`(K,)` int64.
            - output: :math:`(K, S, S, 3)` uint8.
        """
        if self.source is None:
            raise PluginError(f"generator {self.name!r}: not trained; call fit() or load a run first")
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise DataError(f"generator {self.name!r} sample(labels): values must be in 0..{len(self.class_names) - 1}, "
                            f"got {labels.min()}..{labels.max()}")
        missing = sorted({self.class_names[k] for k in np.unique(labels) if int(k) not in self.translators})
        if missing:
            raise DataError(f"generator {self.name!r}: no translator for classes {missing} (no real training images)")
        raw = np.asarray(self.source.sample(labels, seeds))
        out = np.empty_like(raw)
        for k in np.unique(labels):
            m = labels == k
            out[m] = self.translators[int(k)].translate(raw[m], labels[m])[0]
        return out

    def checkpoint_sha256(self) -> str:
        """Hash over the source's and every translator's checkpoint hash."""
        h = hashlib.sha256()
        if self.source is not None:
            h.update(self.source.checkpoint_sha256().encode())
        for k in sorted(self.translators):
            h.update(f"{k}:{self.translators[k].checkpoint_sha256()}".encode())
        return h.hexdigest()

    # -- persistence -------------------------------------------------------------------
    def save(self, run_dir) -> Path:
        """Write ``run.json`` (parts live in their own run directories under ``run_dir``)."""
        if self.source is None:
            raise PluginError(f"generator {self.name!r}: nothing to save; call fit() first")
        run_dir = Path(run_dir)
        if self.run_dir is None or Path(self.run_dir).resolve() != run_dir.resolve():
            raise PluginError(f"generator {self.name!r}: save() writes into its fit run_dir {self.run_dir}, "
                              f"not {run_dir}")
        self._record(run_dir, self._source_dir, [self.class_names[k] for k in sorted(self.translators)])
        return run_dir

    @classmethod
    def load(cls, run_dir, device: str | None = None) -> "SourceTranslatorComposition":
        """Reopen the composition: the source run and each finished translator, via the registry."""
        run_dir = Path(run_dir)
        rec = read_run_record(run_dir)
        self = cls(**rec["config"])
        dev = device or self.config.device
        source_dir = Path(rec["source_dir"])
        if not source_dir.is_absolute():
            source_dir = run_dir / source_dir
        self.source = ae.load_run(source_dir, kind="generator", device=dev)
        self._source_dir = source_dir
        self.class_names = list(rec["class_names"])
        self.train_counts = {k: int(v) for k, v in rec["train_counts"].items()}
        self.translators = {self.class_names.index(c): ae.load_run(run_dir / "translators" / c, kind="generator",
                                                                   device=dev)
                            for c in rec.get("finished_classes", [])}
        self.run_dir = run_dir
        return self


def _mark_done(run_dir: Path) -> None:
    """Flag a part's run record as finished (so a resumed composition reuses it)."""
    import json

    p = Path(run_dir) / "run.json"
    rec = json.loads(p.read_text())
    rec["composition_part_done"] = True
    atomic_write_json(p, rec)
