"""The evaluator plugin interface: a classifier and/or image sets in, metrics, tables and figures out."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

from augengine.plugin import Plugin

__all__ = ["Evaluator", "Evaluation"]


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
        from augengine.runs import atomic_write_bytes, atomic_write_json, atomic_write_text

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

    def evaluate(self, classifier=None, test=None, *, baseline=None, synthetic=None, train=None,
                 external: dict | None = None, seed: int = 0, **kwargs: Any) -> Evaluation:
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
