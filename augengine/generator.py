"""The generator plugin interface.

A generator learns from labelled images (:meth:`Generator.fit`) and then produces labelled
images, either **from noise** (``mode = "noise"``: implement :meth:`Generator.sample`) or by
**translating given images** (``mode = "translate"``: implement :meth:`Generator.translate`).
:meth:`Generator.generate` — shared by all generators — plans the labels, derives one seed per
image, calls the plugin in batches, checks what comes back, and writes a resumable
:class:`~augengine.SyntheticSet`.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from tqdm.auto import tqdm

from augengine.errors import DataError, PluginError, ShapeError
from augengine.images import check_images
from augengine.imageset import ImageSet
from augengine.plugin import Plugin
from augengine.rng import isolated_global_rng
from augengine.runtime import benchmarked_convolutions, retained_heap
from augengine.runs import sha256_file, software_versions
from augengine.synthetic import SyntheticSet, partial_path

__all__ = ["Generator", "plan_labels", "image_seeds"]


def image_seeds(seed: int, n: int, start: int = 0) -> np.ndarray:
    """Per-image seeds ``seed * 1_000_003 + i`` for ``i`` in ``start..n-1`` (stable under resume)."""
    return (np.int64(seed) * np.int64(1_000_003) + np.arange(start, n, dtype=np.int64)) % np.int64(2**62)


def plan_labels(
    class_names: list[str],
    n: int | None,
    *,
    per_class: Mapping[str, int] | None = None,
    distribution: Literal["train", "uniform"] | Mapping[str, float] = "train",
    train_counts: Mapping[str, int] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Labels of the images to generate, shuffled deterministically by ``seed``.

    Either ``per_class`` (exact counts by class name) or ``n`` split over the classes by
    ``distribution`` ("train": proportional to ``train_counts``; "uniform"; or a mapping of
    weights) with largest-remainder rounding.

    Returns:
        int64 array (N,).
    """
    idx = {c.lower(): i for i, c in enumerate(class_names)}
    counts = np.zeros(len(class_names), dtype=np.int64)
    if per_class:
        for name, k in per_class.items():
            if str(name).lower() not in idx:
                raise DataError(f"per_class: class {name!r} is not in the class space {class_names}")
            if int(k) < 0:
                raise DataError(f"per_class: count for {name} must be >= 0, got {k}")
            counts[idx[str(name).lower()]] = int(k)
    else:
        if n is None or n <= 0:
            raise DataError(f"n: expected a positive number of images, got {n}")
        if distribution == "uniform":
            w = np.ones(len(class_names))
        elif distribution == "train":
            if not train_counts:
                w = np.ones(len(class_names))
            else:
                w = np.array([float(train_counts.get(c, 0)) for c in class_names])
        else:
            w = np.zeros(len(class_names))
            for name, v in dict(distribution).items():
                if str(name).lower() not in idx:
                    raise DataError(f"class distribution: unknown class {name!r}")
                w[idx[str(name).lower()]] = float(v)
        if w.sum() <= 0:
            raise DataError("class distribution: all weights are zero")
        exact = w / w.sum() * n
        counts = np.floor(exact).astype(np.int64)
        rest = n - counts.sum()
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:rest]] += 1
    labels = np.repeat(np.arange(len(class_names), dtype=np.int64), counts)
    return np.random.default_rng(seed).permutation(labels)


class Generator(Plugin):
    """Base class of generator plugins.

    Subclasses set ``name``, ``Config`` (with an ``image_size`` field) and ``mode``, and
    implement :meth:`fit`, :meth:`save`, :meth:`load` and either :meth:`sample` (noise) or
    :meth:`translate` (translation). After :meth:`fit` or :meth:`load`, ``class_names`` is the
    class space of the images it produces and ``train_counts`` the per-class counts it saw.
    """

    kind: ClassVar[str] = "generator"
    mode: ClassVar[Literal["noise", "translate"]] = "noise"
    class_names: list[str]
    train_counts: dict[str, int]
    run_dir: Path | None = None

    @property
    def image_size(self) -> int:
        return int(getattr(self.config, "image_size"))

    # -- to implement --------------------------------------------------------------------
    def fit(self, train: ImageSet, *, val: ImageSet | None = None, run_dir: str | Path | None = None,
            resume: bool = False, force: bool = False, seed: int = 0, progress: bool = True,
            **inputs: Any) -> "Generator":
        """Train on ``train`` (the real training split); checkpoints go to ``run_dir``.

        ``resume=True`` continues from the last checkpoint in ``run_dir``. Extra keyword
        inputs are plugin-specific (e.g. a translator's target domain). Returns ``self``.

        The engine wraps every implementation (see :mod:`augengine.plugin`): a used
        ``run_dir`` needs ``resume=True`` (recorded config and seed must match) or
        ``force=True`` (the engine removes the old run first; implementations never see
        ``force``); the caller's global RNG state is left as it was.
        """
        raise NotImplementedError

    def sample(self, labels: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Noise generators: one image per (label, seed); image i depends only on
        ``labels[i]``, ``seeds[i]`` and the weights.

        Shape:
            - labels: :math:`(K,)` int64.
            - seeds: :math:`(K,)` int64.
            - output: :math:`(K, S, S, 3)` uint8 with S = ``image_size``.
        """
        raise NotImplementedError(f"generator {self.name!r} does not generate from noise")

    def translate(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Translators: map source images to the target domain.

        Shape:
            - images: :math:`(K, S, S, 3)` uint8.
            - labels: :math:`(K,)` source labels (int64, in the source's class space).
            - output: images :math:`(K, S, S, 3)` uint8 and their labels :math:`(K,)` in
              ``class_names``.
        """
        raise NotImplementedError(f"generator {self.name!r} does not translate images")

    def save(self, run_dir: str | Path) -> Path:
        """Write weights and ``run.json`` into ``run_dir`` (loadable with ``weights_only=True``)."""
        raise NotImplementedError

    @classmethod
    def load(cls, run_dir: str | Path, device: str | None = None) -> "Generator":
        """Reopen a generator saved with :meth:`save`."""
        raise NotImplementedError

    def checkpoint_sha256(self) -> str:
        """SHA-256 of the weights that generate (override when not ``run_dir/checkpoint.pt``)."""
        if self.run_dir is not None and (Path(self.run_dir) / "checkpoint.pt").exists():
            return sha256_file(Path(self.run_dir) / "checkpoint.pt")
        return ""

    # -- shared --------------------------------------------------------------------------
    def _checked(self, out: Any, k: int, what: str) -> np.ndarray:
        try:
            return check_images(np.asarray(out) if not hasattr(out, "numpy") else out.numpy(),
                                where=f"generator {self.name!r} {what}", size=self.image_size, n=k)
        except ShapeError as e:
            raise PluginError(str(e)) from None

    def generate(
        self,
        n: int | None = None,
        *,
        out: str | Path,
        seed: int = 0,
        per_class: Mapping[str, int] | None = None,
        class_distribution: Literal["train", "uniform"] | Mapping[str, float] = "train",
        source: ImageSet | None = None,
        source_class: str | None = None,
        resume: bool = False,
        force: bool = False,
        batch_size: int = 64,
        chunk_size: int = 256,
        attrs: Mapping[str, Any] | None = None,
        progress: bool = True,
    ) -> SyntheticSet:
        """Generate ``n`` labelled images into the SyntheticSet ``out``.

        Noise generators take ``n`` + ``class_distribution``, or ``per_class``; translators
        take ``source`` (an ImageSet, optionally restricted to ``source_class``) and translate
        ``n`` of its images (cycling through a seeded permutation when ``n`` > the source).

        The same arguments and seed give the same images; ``resume=True`` continues a set
        interrupted mid-write and yields exactly the uninterrupted set.

        Returns:
            the finished :class:`~augengine.SyntheticSet`.
        """
        if not getattr(self, "class_names", None):
            raise PluginError(f"generator {self.name!r}: not trained; call fit() or load a run first")
        base_attrs: dict[str, Any] = {
            "generator": self.name,
            "generator_config": self.config.model_dump(mode="json"),
            "checkpoint_sha256": self.checkpoint_sha256(),
            "seed": int(seed),
        }
        base_attrs["versions"] = software_versions()
        base_attrs.update(attrs or {})
        src_idx = src_images = None
        if self.mode == "translate":
            if source is None:
                raise DataError(f"generator {self.name!r} translates images: give source images (source=)")
            pool = np.arange(len(source))
            if source_class is not None:
                pool = pool[source.labels == source.class_index(source_class)]
            if len(pool) == 0:
                raise DataError(f"source_class {source_class!r}: the source holds no images of that class")
            n = int(n or len(pool))
            if n <= 0:
                raise DataError(f"n: expected a positive number of images, got {n}")
            rng = np.random.default_rng(seed)
            reps = -(-n // len(pool))
            src_idx = np.concatenate([rng.permutation(pool) for _ in range(reps)])[:n]
            labels = source.labels[src_idx]
            src_images = source.images(self.image_size)
            base_attrs["source_fingerprint"] = source.fingerprint()
            base_attrs["label_plan"] = {"source_class": source_class}
        else:
            labels = plan_labels(self.class_names, n, per_class=per_class, distribution=class_distribution,
                                 train_counts=getattr(self, "train_counts", None), seed=seed)
            base_attrs["label_plan"] = {"per_class": dict(per_class) if per_class else None,
                                        "class_distribution": class_distribution if isinstance(class_distribution, str)
                                        else dict(class_distribution)}
            n = len(labels)
            if n == 0:
                raise DataError("generate: the requested class counts add up to 0 images")
        seeds = image_seeds(seed, n)
        base_attrs["n_planned"] = int(n)
        writer = SyntheticSet.create(out, class_names=self.class_names, image_size=self.image_size,
                                     attrs=base_attrs, resume=resume, force=force, chunk_size=chunk_size,
                                     preallocate=n)
        committed = [writer.committed]
        try:
            with isolated_global_rng(), benchmarked_convolutions(not self._exact_kernels()), retained_heap():
                return self._write(writer, committed, n, labels, seeds, src_idx, src_images, batch_size, chunk_size,
                                   progress)
        except BaseException:
            # nothing committed: leave no empty .partial.h5 that would block a plain rerun
            if committed[0] == 0:
                partial_path(out).unlink(missing_ok=True)
            raise

    def _write(self, writer, committed: list[int], n, labels, seeds, src_idx, src_images, batch_size, chunk_size,
               progress) -> SyntheticSet:
        """Generate batch by batch. One background thread writes each batch's images (``stage``)
        while the next batch is generated and commits every chunk's labels and seeds after its
        images. The set is preallocated, so the images go out with ``os.pwrite``, outside the GIL
        (h5py holds it while it writes), and writing costs little on top of generating.

        A batch is handed over as the plugin returned it (no copy) and dropped once written, so
        the plugin's next allocation reuses its memory: holding a chunk of batches made the C
        allocator hand the memory back to the OS and fault fresh pages in for every batch.

        At most one batch write (and one chunk commit) is in flight; an error or interrupt waits
        for them, so every chunk whose commit was handed to the writer is committed before the
        exception leaves, and staged images of an unfinished chunk are dropped on resume."""
        with writer, ThreadPoolExecutor(max_workers=1, thread_name_prefix="augengine-write") as pool:
            start = writer.committed
            bar = tqdm(total=n, initial=start, desc=f"generate {self.name}", unit="img", disable=not progress)
            step = max(1, min(batch_size, chunk_size))
            pending: list[tuple] = []  # (labels, seeds, source_index) of the staged batches
            pending_n = 0
            in_flight: list[tuple[Future, bool]] = []  # (future, is a commit), in submission order

            def settle() -> None:
                while in_flight:
                    fut, is_commit = in_flight.pop(0)
                    res = fut.result()
                    if is_commit:
                        committed[0] = res

            try:
                for s in range(start, n, step):
                    e = min(n, s + step)
                    if self.mode == "translate":
                        imgs, out_labels = self.translate(src_images[src_idx[s:e]], labels[s:e])
                        imgs = self._checked(imgs, e - s, "translate()")
                        pending.append((np.asarray(out_labels, dtype=np.int64), seeds[s:e], src_idx[s:e]))
                    else:
                        imgs = self._checked(self.sample(labels[s:e], seeds[s:e]), e - s, "sample()")
                        pending.append((labels[s:e], seeds[s:e], None))
                    settle()
                    in_flight.append((pool.submit(writer.stage, imgs), False))
                    del imgs
                    pending_n += e - s
                    if pending_n >= chunk_size or e == n:
                        chunk_labels, chunk_seeds = (np.concatenate([p[i] for p in pending]) for i in (0, 1))
                        chunk_src = None if self.mode != "translate" else np.concatenate([p[2] for p in pending])
                        in_flight.append((pool.submit(writer.commit, chunk_labels, seeds=chunk_seeds,
                                                      source_index=chunk_src), True))
                        pending, pending_n = [], 0
                    bar.update(e - s)
            finally:
                try:
                    settle()
                finally:
                    bar.close()
            return writer.close()
