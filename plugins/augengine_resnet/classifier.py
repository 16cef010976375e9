"""The ``resnet`` classifier: any timm model, trained with the paper's fastai-style recipe.

Recipe (every part a config option): AdamW, a learning-rate range test when ``lr`` is not
given, ``OneCycleLR`` with momentum (β₁) cycling, bf16 autocast + channels_last where the CPU
has native bf16 (AMP on CUDA), light dihedral augmentation, the best epoch kept by validation
balanced accuracy, early stopping; optional label smoothing, class-balanced sampling,
class-weighted loss, EMA of the weights and test-time flips.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

import augengine
from augengine import ConfigError, DataError, ImageSet, TrainingDiverged, to_model
from augengine.plugin_api import (
    Augment,
    LossScaler,
    PluginTrial,
    Work,
    atomic_write_bytes,
    atomic_write_json,
    autocast_context,
    autocast_dtype,
    load_checkpoint,
    read_run_record,
    Resolution,
    Variant,
    precision_options,
    resolve_channels_last,
    resolve_variant,
    save_checkpoint,
    select_device,
    sha256_file,
    static_variant,
    tensor_view,
    timed_steps,
    work_autocast,
    write_run_record,
)

from augengine_resnet.lr_finder import lr_range_test, plot_lr_curve

__all__ = ["ResnetClassifier", "ResnetConfig", "build_model"]

CHECKPOINT = "checkpoint.pt"
TRAIN_STATE = "train_state.pt"


class ResnetConfig(augengine.PluginConfig):
    """Configuration of the ``resnet`` classifier."""

    arch: str = Field("resnet50", description="timm model name (resnet50 as in the paper; resnet18 for quick runs)")
    image_size: int = Field(224, ge=8, description="input side length in pixels (224 paper, 64 quick)")
    pretrained: str | None = Field(None, description="local weights file (.safetensors or torch state dict); None = random init")
    epochs: int = Field(30, ge=1, description="training epochs (one OneCycle schedule over all of them)")
    batch_size: int = Field(64, ge=1, description="mini-batch size")
    lr: float | None = Field(None, gt=0, description="peak learning rate; None = run the LR range test and use its suggestion")
    lr_find_iters: int = Field(100, ge=5, description="steps of the LR range test")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay")
    pct_start: float = Field(0.25, gt=0, lt=1, description="OneCycle warm-up fraction")
    div_factor: float = Field(25.0, gt=0, description="OneCycle initial lr = lr / div_factor")
    final_div_factor: float = Field(1e4, gt=0, description="OneCycle final lr = initial lr / final_div_factor")
    momentum_range: tuple[float, float] = Field((0.85, 0.95), description="OneCycle β₁ cycling (base, max)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing")
    class_balanced_sampling: bool = Field(False, description="draw training images with probability 1/class count")
    class_weighted_loss: Literal["none", "inverse", "sqrt_inverse"] = Field("none", description="cross-entropy class weights")
    ema_decay: float | None = Field(None, gt=0, lt=1, description="keep an EMA of the weights (e.g. 0.999) and evaluate it; lags in short runs (ResNet-18, HAM 64 px: 0.995 cost 0.18 balanced accuracy after 4 epochs)")
    tta_flips: bool = Field(False, description="average predictions over horizontal/vertical flips")
    augment: Literal["none", "dihedral", "light", "strong"] = Field(
        "light", description="train-time augmentation: dihedral = flips + 90° rotations; light = + colour jitter "
        "(augengine.data.Augment defaults); strong = + random affine and stronger colour jitter")
    drop_rate: float = Field(0.0, ge=0, lt=1, description="dropout before the classifier head")
    early_stopping_patience: int | None = Field(10, ge=1, description="stop after this many epochs without a better val balanced accuracy")
    # speed knobs: "auto" = measured at the start of a fit (augengine.autotune), recorded in run.json
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="autocast precision; auto = measured (bf16 is a candidate where native / on CUDA)")
    channels_last: bool | Literal["auto"] = Field("auto", description="channels-last memory format; auto = measured")
    compile: bool | Literal["auto"] = Field("auto", description="torch.compile the training forward pass; auto = measured")
    device: str = Field("auto", description="auto, cpu or cuda")
    deterministic: bool = Field(False, description="bit-reproducible training on CUDA too (deterministic kernels only; costs speed there); CPU fits are reproducible without it")
    eval_batch_size: int = Field(256, ge=1, description="batch size of predict_proba/features")


def _closest_models(name: str, n: int = 5) -> list[str]:
    import timm

    names = timm.list_models()
    return difflib.get_close_matches(name, names, n=n, cutoff=0.5) or difflib.get_close_matches(
        name.lower(), names, n=n, cutoff=0.3
    )


def build_model(arch: str, num_classes: int, drop_rate: float = 0.0) -> torch.nn.Module:
    """A timm model with a fresh ``num_classes`` head (random init). ConfigError for unknown names."""
    import timm

    if arch not in timm.list_models():
        close = _closest_models(arch)
        hint = f"; close matches: {', '.join(close)}" if close else "; see timm.list_models()"
        raise ConfigError(f"classifier 'resnet': config key 'arch': unknown timm model {arch!r}{hint}")
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
    _global_mean_pools(model)
    return model


def _global_mean_pools(model: torch.nn.Module) -> None:
    """Every ``AdaptiveAvgPool2d(1)`` becomes timm's ``FastAdaptiveAvgPool`` (a mean over H and W):
    the same numbers and no parameters, and a deterministic backward on CUDA (adaptive average
    pooling's backward there has none)."""
    from timm.layers.adaptive_avgmax_pool import FastAdaptiveAvgPool

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.AdaptiveAvgPool2d) and child.output_size in (1, (1, 1)):
                setattr(parent, name, FastAdaptiveAvgPool(flatten=False))


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ConfigError(f"classifier 'resnet': config key 'pretrained': file {str(path)!r} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = load_checkpoint(path)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path}: expected a state dict of tensors (or one under 'state_dict'/'model')")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_pretrained(model: torch.nn.Module, path: str | Path) -> dict:
    """Load a local weights file into ``model``.

    The classifier head (``model.get_classifier()``) is left freshly initialised when its shape
    differs (another class count); any other shape mismatch is an error naming the first key.

    Returns:
        record: path, sha256, missing keys, unexpected keys, head re-initialised or not.
    """
    path = Path(path)
    state = _read_weights(path)
    own = model.state_dict()
    head_prefixes = ()
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        head_prefixes = tuple(f"{n}." for n, m in model.named_modules() if m is head and n)
    skipped = []
    for k, v in list(state.items()):
        if k in own and own[k].shape != v.shape:
            if k.startswith(head_prefixes):
                skipped.append(k)
                del state[k]
                continue
            raise DataError(
                f"{path}: key {k!r} has shape {tuple(v.shape)} in the file but {tuple(own[k].shape)} "
                f"in {type(model).__name__}; the weights do not fit this architecture"
            )
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in skipped]
    if len(missing) == len(own):
        raise DataError(f"{path}: no key matches the model (first file key {next(iter(state), None)!r}, "
                        f"first model key {next(iter(own))!r})")
    return {
        "path": str(path),
        "sha256": sha256_file(path),
        "missing_keys": missing,
        "unexpected_keys": list(result.unexpected_keys),
        "head_reinitialised": skipped,
    }


class _StrongAugment:
    """Dihedral + stronger colour jitter (augengine.data.Augment), then a small random affine (kornia).

    Shape:
        - x: :math:`(N, 3, S, S)` float in [-1, 1]; output the same.
    """

    def __init__(self):
        self.base = Augment(brightness=0.15, contrast=0.2, saturation=0.2, hue=0.03)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        import kornia.geometry.transform as KT

        x = self.base(x, generator=generator)
        n = x.shape[0]
        r = torch.rand(4, n, generator=generator)
        angle = (r[0] * 2 - 1) * 20.0
        scale = 0.9 + r[1] * 0.25
        shift = (r[2:4].T * 2 - 1) * 0.05 * x.shape[-1]
        center = torch.full((n, 2), (x.shape[-1] - 1) / 2)
        m = KT.get_rotation_matrix2d(center, angle, torch.stack([scale, scale], 1))
        m[:, :, 2] += shift
        return KT.warp_affine(x, m.to(x), dsize=tuple(x.shape[-2:]), padding_mode="reflection")


def _atomic_png(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


class ResnetClassifier(augengine.Classifier):
    """timm ResNet (any timm model) trained with AdamW, LR range test and OneCycle (the paper's judge)."""

    name = "resnet"
    Config = ResnetConfig

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.model: torch.nn.Module | None = None
        self.device = select_device(self.config.device)
        self.record: dict = {}
        self.notes: list[str] = []

    # -- runtime choices ------------------------------------------------------------------
    @property
    def variant(self) -> Variant:
        """The speed variant in use: the resolved one after fit/load, else fixed settings as given and
        ``auto`` knobs at their safe value (fp32, contiguous, eager)."""
        speed = self.__dict__.get("speed")
        return speed.variant if speed is not None else static_variant(self._requested())

    def _requested(self) -> dict:
        c = self.config
        return {"precision": c.precision, "channels_last": c.channels_last, "compile": c.compile}

    def _amp_dtype(self) -> torch.dtype | None:
        return self.variant.autocast_dtype()

    def _channels_last(self) -> bool:
        return self.variant.channels_last

    def _resolve_speed(self, num_classes: int, total_steps: int, recorded: dict | None = None,
                       progress: bool = False) -> Resolution:
        """Resolve the ``auto`` speed knobs for a fit of ``total_steps`` optimizer steps (augengine.autotune)."""
        from tqdm.auto import tqdm

        c = self.config
        flags = [False, True]
        self.speed = resolve_variant(
            plugin=self.name, arch=f"{c.arch}-K{num_classes}-batch{c.batch_size}", image_size=c.image_size,
            device=self.device, requested=self._requested(), total_steps=total_steps, recorded=recorded,
            options={"precision": precision_options(self.device), "channels_last": flags, "compile": flags},
            trial=PluginTrial(self, "_trial", num_classes),
            log=(lambda msg: tqdm.write(msg)) if progress else None)
        return self.speed

    def _trial(self, v: Variant, n: int, num_classes: int) -> list[float]:
        """Seconds of each of ``n`` training steps (forward, backward, AdamW) of variant ``v`` on a
        throwaway model and a random batch (the caller's RNG state is left as it was)."""
        c = self.config
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            model = build_model(c.arch, num_classes, c.drop_rate).to(self.device)
            if v.channels_last:
                model = model.to(memory_format=torch.channels_last)
            model.train()
            forward = torch.compile(model) if v.compile else model
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            g = torch.Generator().manual_seed(0)
            x = torch.randint(0, 256, (c.batch_size, c.image_size, c.image_size, 3), dtype=torch.uint8, generator=g)
            xb = to_model(x, self.device, channels_last=v.channels_last)
            yb = torch.randint(num_classes, (c.batch_size,), generator=g).to(self.device)

            def step(i):
                with autocast_context(self.device, v.autocast_dtype()):
                    logits = forward(xb)
                loss = F.cross_entropy(logits.float(), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            return timed_steps(step, n, self.device)

    def _autocast(self):
        return autocast_context(self.device, self._amp_dtype())

    def _new_model(self, num_classes: int) -> torch.nn.Module:
        model = build_model(self.config.arch, num_classes, self.config.drop_rate)
        pre = "random init"
        if self.config.pretrained:
            pre = load_pretrained(model, self.config.pretrained)
        self.record["pretrained"] = pre
        model.to(self.device)
        if self._channels_last():
            model = model.to(memory_format=torch.channels_last)
        return model

    def _to_input(self, xb_uint8: torch.Tensor) -> torch.Tensor:
        return to_model(xb_uint8, self.device, channels_last=self._channels_last())

    # -- data -----------------------------------------------------------------------------
    def _training_set(self, train: ImageSet, synthetic: Sequence[ImageSet], amount, seed: int) -> ImageSet:
        synthetic = list(synthetic or [])
        real = {c.lower() for c in train.class_names}
        for i, s in enumerate(synthetic):
            # classes are matched by name (augengine.combine): a MEL/NV set joins a 7-class training set
            unknown = [c for c in s.class_names if c.lower() not in real]
            if unknown:
                raise DataError(
                    f"classifier 'resnet': synthetic set {i} ({getattr(s, 'path', type(s).__name__)}): class "
                    f"{', '.join(map(repr, unknown))} is not in the real training set's classes {list(train.class_names)}"
                )
            if s.size != train.size:
                self.notes.append(
                    f"synthetic set {i} has {s.size}px images, real train {train.size}px: both resized to {self.image_size}px"
                )
        if not synthetic:
            return train
        return augengine.combine(train, synthetic, amount=amount, seed=seed)

    def _augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        mode = self.config.augment
        if mode == "none":
            return x
        if not hasattr(self, "_augmenter"):
            if mode == "dihedral":
                self._augmenter = Augment(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
            elif mode == "light":
                self._augmenter = Augment()
            else:
                self._augmenter = _StrongAugment()
        return self._augmenter(x, generator=gen)

    def _class_weights(self, labels: np.ndarray, num_classes: int) -> torch.Tensor | None:
        mode = self.config.class_weighted_loss
        if mode == "none":
            return None
        counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
        w = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
        if mode == "sqrt_inverse":
            w = np.sqrt(w)
        present = counts > 0
        w = w / (w[present] * counts[present]).sum() * counts[present].sum()  # mean weight per image = 1
        w[~present] = 1.0
        return torch.tensor(w, dtype=torch.float32, device=self.device)

    # -- training -------------------------------------------------------------------------
    def fit(self, train, *, val=None, synthetic=(), amount=None, run_dir=None, resume=False, seed=0, progress=True):
        """Train on ``train`` ∪ ``synthetic``; keep the epoch with the best ``val`` balanced accuracy.

        Args:
            train: real training :class:`~augengine.ImageSet`.
            val: validation set (same class space); without it the last epoch is kept.
            synthetic: synthetic sets to add (same class space; other sizes are resized).
            amount: synthetic images to use: a count (int), a ratio of ``len(train)`` (float), all if None.
            run_dir: where checkpoints, ``epochs.jsonl``, the LR curve and ``run.json`` go.
            resume: continue from ``run_dir/train_state.pt`` when present.
            seed: seed of initialisation, batch order and augmentation.
            progress: show tqdm bars.

        Returns:
            self.

        Raises:
            TrainingDiverged: the loss became NaN/inf (names the step; the last good checkpoint stays).
        """
        from sklearn.metrics import balanced_accuracy_score
        from tqdm.auto import tqdm

        cfg = self.config
        t_start = time.perf_counter()
        if val is not None and list(val.class_names) != list(train.class_names):
            raise DataError(f"classifier 'resnet': val has classes {val.class_names}, train has {train.class_names}")
        self.notes = []
        self.class_names = list(train.class_names)
        num_classes = len(self.class_names)
        run_dir = Path(run_dir) if run_dir is not None else None
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir

        data = self._training_set(train, synthetic, amount, seed)
        X = tensor_view(data.images(self.image_size))
        y_np = np.asarray(data.labels, dtype=np.int64)
        y = torch.from_numpy(y_np)
        n = len(y)
        if n == 0:
            raise DataError("classifier 'resnet': the training set is empty")
        self.train_counts = {c: int(k) for c, k in zip(self.class_names, np.bincount(y_np, minlength=num_classes))}

        # the global generators (weight init, dropout): the engine isolates them from the
        # caller around every fit (augengine.plugin_api.isolated_global_rng)
        random.seed(seed)
        np.random.seed(seed % (2**32))
        recorded = None  # a resumed fit keeps the speed variant it was trained with (same numerics)
        if resume and run_dir is not None and (run_dir / TRAIN_STATE).is_file():
            try:
                recorded = (load_checkpoint(run_dir / TRAIN_STATE).get("record") or {}).get("speed")
            except DataError:
                recorded = None
        self._resolve_speed(num_classes, cfg.epochs * max(1, n // cfg.batch_size), recorded=recorded,
                            progress=progress)
        self.record["speed"] = self.speed.record()
        torch.manual_seed(seed)
        model = self._new_model(num_classes)
        forward = torch.compile(model) if self.variant.compile else model
        weight = self._class_weights(y_np, num_classes)

        def loss_fn(logits, target):
            return F.cross_entropy(logits.float(), target, weight=weight, label_smoothing=cfg.label_smoothing)

        base_m, max_m = cfg.momentum_range
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr or 1e-3, betas=(max_m, 0.999), weight_decay=cfg.weight_decay)
        # like fastai, the last partial batch is dropped (a batch of one breaks BatchNorm)
        steps_per_epoch = max(1, n // cfg.batch_size)
        bs = min(cfg.batch_size, n)

        def epoch_order(epoch: int) -> torch.Tensor:
            g = torch.Generator().manual_seed(seed * 100_003 + epoch)
            if cfg.class_balanced_sampling:
                counts = torch.bincount(y, minlength=num_classes).double()
                return torch.multinomial(1.0 / counts[y], n, replacement=True, generator=g)
            return torch.randperm(n, generator=g)

        def batch_loss(idx, gen, train_mode=True):
            xb = self._to_input(X[idx])
            if train_mode:
                xb = self._augment(xb, gen)
            with self._autocast():
                logits = forward(xb)
            return loss_fn(logits, y[idx].to(self.device))

        # state that resume restores
        state = {"epoch": 0, "best_score": -math.inf, "best_epoch": None, "bad_epochs": 0, "lr": cfg.lr, "history": []}
        best_model = None
        ema = None
        if cfg.ema_decay is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        resumed = None
        if resume and run_dir is not None and (run_dir / TRAIN_STATE).is_file():
            resumed = load_checkpoint(run_dir / TRAIN_STATE, map_location=self.device)
            model.load_state_dict(resumed["model"])
            if ema is not None and resumed.get("ema") is not None:
                ema.load_state_dict(resumed["ema"])
            best_model = resumed.get("best_model")
            state.update({k: resumed[k] for k in state})
            self.record.update(resumed.get("record", {}))

        # learning rate: given, resumed, or from the range test
        lr_result = None
        if state["lr"] is None:
            gen = torch.Generator().manual_seed(seed + 7)

            def finder_batches():
                while True:
                    order = torch.randperm(n, generator=gen)
                    for i in range(steps_per_epoch):
                        yield order[i * bs : (i + 1) * bs]

            lr_result = lr_range_test(
                model, optimizer, lambda idx: batch_loss(idx, gen), finder_batches(), num_iter=cfg.lr_find_iters
            )
            lr = lr_result.suggestion
            if not math.isfinite(lr):
                lr = 1e-3
                self.notes.append("LR range test gave no suggestion; used lr=1e-3")
            state["lr"] = float(lr)
            self.record["lr_finder"] = {"suggestion": lr_result.suggestion, "iters": len(lr_result.lrs)}
            if run_dir is not None and lr_result.lrs:
                _atomic_png(run_dir / "lr_finder.png", plot_lr_curve(lr_result, f"{cfg.arch} LR range test"))
                atomic_write_json(run_dir / "lr_finder.json", lr_result.to_json())
        lr = state["lr"]
        for g in optimizer.param_groups:
            g["lr"] = lr
        total_steps = cfg.epochs * steps_per_epoch
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=total_steps, pct_start=cfg.pct_start, div_factor=cfg.div_factor,
            final_div_factor=cfg.final_div_factor, cycle_momentum=True, base_momentum=base_m, max_momentum=max_m,
        )
        # fp16 autocast steps through a GradScaler; bf16/fp32 steps are plain (augengine.plugin_api.LossScaler)
        scaler = LossScaler(self.device, self._amp_dtype())
        if resumed is not None:
            scheduler.load_state_dict(resumed["scheduler"])
            # OneCycleLR's constructor resets every group's lr and betas to the schedule's first
            # step; the saved optimizer state holds the values of the step the run was killed at
            optimizer.load_state_dict(resumed["optimizer"])
            scaler.load_state_dict(resumed.get("scaler"))

        eval_model = ema.module if ema is not None else model
        epochs_file = run_dir / "epochs.jsonl" if run_dir is not None else None
        if epochs_file is not None and resumed is None and epochs_file.exists():
            epochs_file.unlink()
        step = state["epoch"] * steps_per_epoch
        for epoch in range(state["epoch"], cfg.epochs):
            t0 = time.perf_counter()
            aug_gen = torch.Generator().manual_seed(seed * 10_007 + epoch)
            order = epoch_order(epoch)
            model.train()
            total, seen = 0.0, 0
            batches = [order[i * bs : (i + 1) * bs] for i in range(steps_per_epoch)]
            bar = tqdm(batches, desc=f"resnet epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
            for idx in bar:
                loss = batch_loss(idx, aug_gen)
                value = float(loss.detach())
                if not math.isfinite(value):
                    where = f" (last good checkpoint: {run_dir / TRAIN_STATE})" if run_dir and (run_dir / TRAIN_STATE).exists() else ""
                    raise TrainingDiverged(
                        f"classifier 'resnet': loss became {value} at step {step} (epoch {epoch + 1}, lr {scheduler.get_last_lr()[0]:.3g}); "
                        f"training stopped{where}"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.backward(loss)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                total += value * len(idx)
                seen += len(idx)
                bar.set_postfix(loss=f"{value:.3f}")
            train_time = time.perf_counter() - t0
            row = {
                "epoch": epoch + 1,
                "train_loss": total / max(seen, 1),
                "lr": float(scheduler.get_last_lr()[0]),
                "train_seconds": round(train_time, 3),
                "images_per_s": round(seen / max(train_time, 1e-9), 1),
            }
            self.model = eval_model
            if val is not None and len(val):
                p = self._predict_raw(val.images(self.image_size), cfg.eval_batch_size, tta=False)
                vy = np.asarray(val.labels)
                row["val_loss"] = float(-np.log(np.clip(p[np.arange(len(vy)), vy], 1e-12, 1)).mean())
                row["val_accuracy"] = float((p.argmax(1) == vy).mean())
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    row["val_balanced_accuracy"] = float(balanced_accuracy_score(vy, p.argmax(1)))
                score = row["val_balanced_accuracy"]
            else:
                score = float(epoch)  # no val: keep the last epoch
            row["seconds"] = round(time.perf_counter() - t0, 3)
            improved = score > state["best_score"]
            if improved:
                state["best_score"], state["best_epoch"], state["bad_epochs"] = score, epoch + 1, 0
                best_model = {k: v.detach().clone() for k, v in eval_model.state_dict().items()}
            else:
                state["bad_epochs"] += 1
            row["best_epoch"] = state["best_epoch"]
            state["epoch"] = epoch + 1
            state["history"].append(row)
            if epochs_file is not None:
                with open(epochs_file, "a") as f:
                    f.write(json.dumps(row) + "\n")
            if progress:
                tqdm.write("resnet " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            if run_dir is not None:
                save_checkpoint(
                    {
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                        "scheduler": scheduler.state_dict(), "ema": None if ema is None else ema.state_dict(),
                        "best_model": best_model, "record": {k: v for k, v in self.record.items() if k == "lr_finder"},
                        **state,
                    },
                    run_dir / TRAIN_STATE,
                )
            if cfg.early_stopping_patience and val is not None and state["bad_epochs"] >= cfg.early_stopping_patience:
                self.notes.append(f"early stopping after epoch {epoch + 1} (best epoch {state['best_epoch']})")
                break

        eval_model.load_state_dict(best_model)
        self.model = eval_model
        self.model.eval()
        self.history = state["history"]
        self.record.update(
            {
                "lr": lr,
                "best_epoch": state["best_epoch"],
                "best_val_balanced_accuracy": state["best_score"] if val is not None else None,
                "epochs_run": state["epoch"],
                "steps_per_epoch": steps_per_epoch,
                "amp_dtype": str(self._amp_dtype()).replace("torch.", "") if self._amp_dtype() else "fp32",
                "channels_last": self._channels_last(),
                "device": str(self.device),
                "seed": seed,
                "train_counts": self.train_counts,
                "n_train_images": n,
                "n_real": len(train),
                "n_synthetic": n - len(train),
                "amount": amount,
                "data_fingerprint": train.fingerprint(),
                "val_fingerprint": val.fingerprint() if val is not None else None,
                "synthetic_sets": [_set_identity(s) for s in (synthetic or [])],
                "timings": {
                    "fit_seconds": round(time.perf_counter() - t_start, 2),
                    "epoch_seconds": [r["seconds"] for r in state["history"]],
                },
                "notes": self.notes,
            }
        )
        if run_dir is not None:
            self.save(run_dir)
        return self

    # -- work (plan estimates) -------------------------------------------------------------
    @classmethod
    def work(cls, config, *, phase, n_images=0, class_counts=None, n_val=0, **context):
        """Training steps (+ LR range test, validation passes each epoch) or batched forward passes.

        ``fit`` counts every epoch (early stopping can only shorten it)."""
        cfg = cls.Config.model_validate(dict(config))
        k = len(class_counts) if class_counts else 8
        key = {"plugin": cls.name, "arch": cfg.arch, "classes": k, "precision": cfg.precision,
               "channels_last": str(cfg.channels_last), "augment": cfg.augment}

        def make_train(b, s, device):
            clf = cls(cfg.model_dump(), image_size=s)
            clf.device = torch.device(device)
            model = build_model(cfg.arch, k, cfg.drop_rate).to(clf.device)
            cl = resolve_channels_last(cfg.channels_last, clf.device, clf._amp_dtype())
            if cl:
                model = model.to(memory_format=torch.channels_last)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            x = torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8)
            y = torch.randint(0, k, (b,)).to(clf.device)
            gen = torch.Generator().manual_seed(0)

            def step():
                xb = to_model(x, clf.device, channels_last=cl)
                if clf.device.type != "meta":
                    xb = clf._augment(xb, gen)
                with work_autocast(clf.device, clf._amp_dtype()):
                    logits = model(xb)
                loss = F.cross_entropy(logits.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            return step

        def make_predict(b, s, device):
            device = torch.device(device)
            dtype = autocast_dtype(device if device.type != "meta" else torch.device("cpu"), cfg.precision)
            model = build_model(cfg.arch, k).to(device).eval()
            cl = resolve_channels_last(cfg.channels_last, device, dtype)
            if cl:
                model = model.to(memory_format=torch.channels_last)
            x = torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8)

            @torch.inference_mode()
            def step():
                with work_autocast(device, dtype):
                    model(to_model(x, device, channels_last=cl)).float().softmax(1)

            return step

        s = cfg.image_size
        passes = 3 if cfg.tta_flips else 1
        pred = Work(f"{cfg.arch} {s} px forward, batch {cfg.eval_batch_size}", 0.0, {**key, "mode": "predict"},
                    cfg.eval_batch_size, s, make=make_predict, min_size=min(s, 64))
        if phase == "predict":
            return [dataclasses.replace(pred, count=passes * n_images / cfg.eval_batch_size)]
        if phase != "fit":
            return []
        bs = max(1, min(cfg.batch_size, n_images))
        steps = cfg.epochs * max(1, n_images // cfg.batch_size) + (cfg.lr_find_iters if cfg.lr is None else 0)
        train = Work(f"{cfg.arch} {s} px train step, batch {bs}", steps, {**key, "mode": "train"}, bs, s,
                     make=make_train, min_size=min(s, 64))
        return [train, dataclasses.replace(pred, count=cfg.epochs * n_val / cfg.eval_batch_size)]

    # -- inference ------------------------------------------------------------------------
    def _check_ready(self):
        if self.model is None:
            raise augengine.PluginError("classifier 'resnet': not trained; call fit() or load() first")

    @torch.inference_mode()
    def _forward_batches(self, arr: np.ndarray, batch_size: int, fn) -> np.ndarray:
        self.model.eval()
        outs = []
        for i in range(0, len(arr), batch_size):
            xb = self._to_input(tensor_view(arr[i : i + batch_size]))
            with self._autocast():
                outs.append(fn(xb).float().cpu())
        if not outs:
            return np.zeros((0, 0), dtype=np.float32)
        return torch.cat(outs).numpy().astype(np.float32)

    def _predict_raw(self, arr: np.ndarray, batch_size: int, tta: bool) -> np.ndarray:
        def fn(x):
            p = self.model(x).float().softmax(1)
            if tta:
                p = (p + self.model(x.flip(3)).float().softmax(1) + self.model(x.flip(2)).float().softmax(1)) / 3
            return p

        out = self._forward_batches(arr, batch_size, fn)
        return out.reshape(len(arr), len(self.class_names))

    def predict_proba(self, images, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (averaged over flips when ``tta_flips``).

        Shape:
            - images: :math:`(N, H, W, 3)` uint8 or an ImageSet.
            - output: :math:`(N, C)` float32.
        """
        self._check_ready()
        arr = self.as_array(images)
        return self._predict_raw(arr, batch_size or self.config.eval_batch_size, self.config.tta_flips)

    def features(self, images, batch_size: int | None = None) -> np.ndarray:
        """Penultimate-layer (pooled, pre-logits) features.

        Shape:
            - images: :math:`(N, H, W, 3)` uint8 or an ImageSet.
            - output: :math:`(N, D)` float32 (D = ``num_features`` of the timm model).
        """
        self._check_ready()
        arr = self.as_array(images)
        m = self.model

        def fn(x):
            return m.forward_head(m.forward_features(x), pre_logits=True)

        out = self._forward_batches(arr, batch_size or self.config.eval_batch_size, fn)
        return out.reshape(len(arr), -1) if len(arr) else np.zeros((0, m.num_features), np.float32)

    # -- persistence ----------------------------------------------------------------------
    def save(self, run_dir) -> Path:
        """Write ``checkpoint.pt`` (weights only) and ``run.json``."""
        self._check_ready()
        run_dir = Path(run_dir)
        state = {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "class_names": list(self.class_names),
            "arch": self.config.arch,
            "train_counts": dict(getattr(self, "train_counts", {})),
        }
        save_checkpoint(state, run_dir / CHECKPOINT)
        write_run_record(
            run_dir, self, class_names=list(self.class_names),
            checkpoint_sha256=sha256_file(run_dir / CHECKPOINT), **self.record,
            resume_state=[TRAIN_STATE],  # only a resumed fit reads it; a finished run may drop it
        )
        self.run_dir = run_dir
        return run_dir

    @classmethod
    def load(cls, run_dir, device=None) -> "ResnetClassifier":
        """Reopen a saved classifier (``checkpoint.pt`` read with ``weights_only=True``)."""
        run_dir = Path(run_dir)
        rec = read_run_record(run_dir)
        cfg = dict(rec["config"])
        cfg["pretrained"] = None  # the checkpoint already holds the weights
        if device is not None:
            cfg["device"] = device
        self = cls(**cfg)
        if rec.get("speed"):
            speed = Resolution.from_record(rec["speed"], where=f"{run_dir / 'run.json'} speed")
            if speed.variant.precision not in precision_options(self.device):
                speed.variant = Variant(**{**speed.variant.as_dict(), "precision": "fp32"})
            self.speed = speed
        ckpt = load_checkpoint(run_dir / CHECKPOINT, map_location=self.device)
        self.class_names = list(ckpt["class_names"])
        self.train_counts = dict(ckpt.get("train_counts", {}))
        model = build_model(self.config.arch, len(self.class_names), self.config.drop_rate).to(self.device)
        if self._channels_last():
            model = model.to(memory_format=torch.channels_last)
        model.load_state_dict(ckpt["model"])
        model.eval()
        self.model = model
        self.record = {k: v for k, v in rec.items() if k not in ("kind", "name", "config", "versions", "written_at")}
        self.record["pretrained"] = rec.get("pretrained", "random init")
        self.run_dir = run_dir
        return self


def _set_identity(s: ImageSet) -> dict:
    path = getattr(s, "path", None)
    out = {"n": len(s), "size": s.size, "type": type(s).__name__}
    if path is not None and Path(path).is_file():
        out["path"] = str(path)
        out["sha256"] = sha256_file(path)
    else:
        h = hashlib.sha256(np.ascontiguousarray(s.labels).tobytes())
        out["fingerprint"] = s.fingerprint() if len(s) < 50_000 else h.hexdigest()
    return out
