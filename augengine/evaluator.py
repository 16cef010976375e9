"""The evaluator plugin interface: a classifier and/or image sets in, metrics, tables and figures out."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from augengine.errors import DataError
from augengine.imageset import ImageSet
from augengine.plugin import Plugin
from augengine.runs import atomic_write_bytes, atomic_write_json, atomic_write_text
from augengine.rng import isolated_global_rng

if TYPE_CHECKING:
    from augengine.classifier import Classifier

__all__ = ["Evaluator", "Evaluation", "check_same_split"]


def _as_list(x) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def check_same_split(classifiers, test, *, what: str = "classifier") -> None:
    """Refuse to score classifiers on test images of another split than they were trained on.

    A classifier records the hash of its training split (``run.json`` ``split_sha256``); a
    test set cut from a split carries that split's hash (``ImageSet.split_sha256``). When
    both are known and differ, the test images may be training images and every metric would
    be inflated.

    Raises:
        DataError: naming the classifier's run and both hashes.
    """
    here = getattr(test, "split_sha256", None)
    if not here:
        return
    for clf in _as_list(classifiers):
        trained = getattr(clf, "trained_split_sha256", None)
        if trained and trained != here:
            where = getattr(clf, "run_dir", None) or f"{getattr(clf, 'kind', what)} {getattr(clf, 'name', '')!r}"
            raise DataError(f"{where}: trained on another split (split_sha256 {trained[:12]}…) than the test images "
                            f"come from ({here[:12]}…); its test images may be training images: evaluate on the "
                            "test split of the split it was trained with")


def _guard_evaluate(evaluate):
    if getattr(evaluate, "__augengine_guarded__", False):
        return evaluate

    @functools.wraps(evaluate)
    def guarded(self, classifier=None, test=None, *args: Any, baseline=None, **kwargs: Any):
        check_same_split(classifier, test)
        check_same_split(baseline, test, what="baseline")
        with isolated_global_rng():
            return evaluate(self, classifier, test, *args, baseline=baseline, **kwargs)

    guarded.__augengine_guarded__ = True
    return guarded


@dataclasses.dataclass
class Evaluation:
    """What an evaluator returns.

    Attributes:
        metrics: JSON-able nested dict with stable keys (numbers with their CIs).
        tables: name → plain-text table.
        figures: name → PNG bytes.
        verdicts: one-line verdicts (e.g. arm vs baseline), most important first.
    """

    metrics: dict[str, Any]
    tables: dict[str, str] = dataclasses.field(default_factory=dict)
    figures: dict[str, bytes] = dataclasses.field(default_factory=dict)
    verdicts: list[str] = dataclasses.field(default_factory=list)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``metrics.json``, ``<table>.txt`` and ``<figure>.png`` into ``out_dir`` (atomically)."""

        from augengine.errors import PluginError
        from augengine.naming import is_safe_stem

        bad = [n for n in (*self.tables, *self.figures) if not is_safe_stem(str(n))]
        if bad:  # a name is a file name inside out_dir, never a path
            raise PluginError(f"Evaluation.save: table/figure name {bad[0]!r} is not a plain file name "
                              "(letters, digits, '.', '_', '+', '-'); see augengine.naming.slug")
        out = Path(out_dir)
        for name, text in self.tables.items():
            atomic_write_text(out / f"{name}.txt", text.rstrip() + "\n")
        for name, png in self.figures.items():
            atomic_write_bytes(out / f"{name}.png", png)
        atomic_write_json(out / "metrics.json", {"metrics": self.metrics, "verdicts": self.verdicts})
        return out

    def to_json(self) -> str:
        return json.dumps({"metrics": self.metrics, "verdicts": self.verdicts}, indent=2, sort_keys=True, default=str)


class Evaluator(Plugin):
    """Base class of evaluator plugins (``benefit``, ``set-quality``)."""

    kind: ClassVar[str] = "evaluator"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "evaluate" in cls.__dict__ and callable(cls.__dict__["evaluate"]):
            cls.evaluate = _guard_evaluate(cls.__dict__["evaluate"])

    def evaluate(self, classifier: "Classifier | Sequence[Classifier] | None" = None, test: ImageSet | None = None,
                 *, baseline: "Classifier | Sequence[Classifier] | None" = None,
                 synthetic: ImageSet | None = None, train: ImageSet | None = None,
                 external: dict[str, ImageSet] | None = None, seed: int = 0, **kwargs: Any) -> Evaluation:
        """Compute metrics.

        Args:
            classifier: a trained :class:`~augengine.Classifier`, or a list of them (one per seed).
            test: the real test :class:`~augengine.ImageSet`.
            baseline: classifier(s) trained without synthetic data (paired comparison).
            synthetic: a :class:`~augengine.SyntheticSet` (set-quality evaluators).
            train: the real training set (reference distribution for set-quality).
            external: name → ImageSet of external test sets, each reported apart.
            seed: bootstrap seed.
        """
        raise NotImplementedError
