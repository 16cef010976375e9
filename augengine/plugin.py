"""The base every plugin class derives from (one subclass per kind).

The engine, not each plugin, enforces what every fit must honour: :class:`Plugin` wraps the
``fit`` a generator or classifier class defines (``__init_subclass__``) so that

* the run directory follows the one rule of :mod:`augengine.rundir` (a used directory needs
  ``resume=True`` with the recorded config and seed, or ``force=True``; a fit that fails
  before recording anything leaves nothing behind);
* the caller's global Python, NumPy and torch random states are the same after the fit as
  before (:func:`augengine.rng.isolated_global_rng`); inside, they are seeded from ``seed``;
* the fit runs with cuDNN's algorithm search on (:func:`augengine.runtime.benchmarked_convolutions`),
  or with deterministic kernels when the plugin's config has ``deterministic`` set, and with the
  memory it frees kept for its next steps (:func:`augengine.runtime.retained_heap`);
* the run record gets the fit's provenance (``seed``, ``split_sha256`` of the training split)
  through :func:`augengine.runs.write_run_record`, whatever the plugin passes.

A plugin's ``fit`` therefore only reads ``resume`` to decide whether to load its checkpoint.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

from augengine.config import PluginConfig, config_fields, validate_config
from augengine.rng import isolated_global_rng
from augengine.rundir import claim_run_dir
from augengine.runtime import benchmarked_convolutions, deterministic_algorithms, retained_heap

__all__ = ["Plugin"]


def _guard_fit(fit):
    """Wrap a plugin's ``fit`` in the run-directory rule, RNG isolation and provenance."""
    if getattr(fit, "__augengine_guarded__", False):
        return fit

    @functools.wraps(fit)
    def guarded(self, train, *args: Any, run_dir=None, resume: bool = False, force: bool = False, seed: int = 0,
                **kwargs: Any):
        if getattr(self, "_fit_active", False):  # a subclass's fit calling super().fit()
            return fit(self, train, *args, run_dir=run_dir, resume=resume, seed=seed, **kwargs)
        seed = int(seed)
        split = getattr(train, "split_sha256", None)
        claim = None
        if run_dir is not None:
            claim = claim_run_dir(run_dir, self, seed=seed, resume=bool(resume), force=bool(force),
                                  provenance={"split_sha256": split} if split else None)
        self.fit_provenance = {"seed": seed, "split_sha256": split}
        self._fit_active = True
        try:
            # a plugin whose config has ``deterministic`` gets bit-reproducible kernels on request,
            # every other fit cuDNN's fastest algorithm for each convolution shape
            exact = self._exact_kernels()
            with isolated_global_rng(seed), deterministic_algorithms(exact), benchmarked_convolutions(not exact), \
                    retained_heap():
                result = fit(self, train, *args, run_dir=run_dir, resume=resume, seed=seed, **kwargs)
        except BaseException:
            if claim is not None:
                claim.failed()
            raise
        finally:
            self._fit_active = False
        if claim is not None:
            claim.succeeded()
        return result

    guarded.__augengine_guarded__ = True
    return guarded


class Plugin:
    """Common base of generators, filters, classifiers and evaluators.

    A plugin class sets ``name`` (unique within its kind, e.g. ``"acgan"``) and ``Config``
    (a :class:`~augengine.config.PluginConfig` subclass). The first line of the class
    docstring is the one-line description shown by ``augengine plugins``.

    Args:
        config: a ``Config`` instance or a mapping; ``None`` means defaults.
        **overrides: individual fields, applied on top of ``config``.
    """

    kind: ClassVar[str] = "plugin"
    name: ClassVar[str] = ""
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    #: config keys a resumed fit may change (they do not alter what is trained)
    resume_may_change: ClassVar[frozenset[str]] = frozenset({"device"})
    #: ``{"seed": …, "split_sha256": …}`` of the last :meth:`fit` in this process (engine-set)
    fit_provenance: dict[str, Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "fit" in cls.__dict__ and callable(cls.__dict__["fit"]):
            cls.fit = _guard_fit(cls.__dict__["fit"])

    def __init__(self, config: PluginConfig | dict[str, Any] | None = None, **overrides: Any):
        if isinstance(config, PluginConfig):
            config = config.model_dump()
        data = dict(config or {})
        data.update(overrides)
        self.config = validate_config(self.Config, data, owner=f"{self.kind} {self.name!r}")

    def _exact_kernels(self) -> bool:
        """True when the plugin's config asks for ``deterministic`` (bit-reproducible) kernels: its
        fits and generation then run without cuDNN's algorithm search."""
        return bool(getattr(getattr(self, "config", None), "deterministic", False))

    @classmethod
    def qualified_name(cls) -> str:
        return f"{cls.kind}:{cls.name}"

    @classmethod
    def description(cls) -> str:
        doc = inspect.getdoc(cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    @classmethod
    def config_fields(cls) -> list[dict[str, Any]]:
        return config_fields(cls.Config)

    @classmethod
    def work(cls, config: dict[str, Any], *, phase: str, n_images: int = 0, **context: Any) -> list | None:
        """The compute of one phase of this plugin, for plan estimates (``bench --dry-run``).

        Args:
            config: the plugin's full config (every default filled in), as a dict.
            phase: generator ``fit``/``generate``, classifier ``fit``/``predict``, filter ``score``,
                evaluator ``evaluate`` (:data:`augengine.work.PHASES` lists each one's context).
            n_images: the images the phase processes.
            **context: ``class_counts`` (training class name → count), ``n_val``,
                ``n_classifiers``, ``n_synthetic``, ``n_train``; unknown keys are ignored.

        Returns:
            a list of :class:`augengine.work.Work` and :class:`augengine.work.ClassifierPass`
            items, or None (the default): not reported, and the estimate says so.
        """
        return None

    def __repr__(self) -> str:
        return f"<{self.qualified_name()} {self.config!r}>"
