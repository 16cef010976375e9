"""The ``cyclegan`` generator plugin: unpaired image-to-image translation X → Y.

Faithful by default to Zhu et al. 2017 ("Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks") and its reference implementation: ResNet generators
(9 residual blocks at 256 px, 6 below), 70×70 PatchGAN discriminators, instance norm, LSGAN
loss, λ_cyc = 10, identity weight 0.5, image histories of 50, Adam 2e-4 with betas
(0.5, 0.999), constant learning rate for ``n_epochs`` then linear decay over
``n_epochs_decay``, N(0, 0.02) init, resize-then-random-crop (286 → 256, scaled with the
size) and horizontal flips. An epoch is ``max(|X|, |Y|)`` iterations: X is walked in a
shuffled order, Y is drawn at random (unaligned), as in the reference.

Departures from the reference are speed-only and mathematically equivalent: the two
generator passes that share a network (G(x) and the identity G(y)) run as one batch, and
the discriminator sees its real and its (history) fake image as one batch — instance norm
normalises each image on its own, so the losses are the same.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from tqdm.auto import tqdm

import augengine as ae
from augengine import ConfigError, DataError, PluginError, TrainingDiverged
from augengine.plugin_api import (
    LossScaler,
    PluginTrial,
    Resolution,
    Variant,
    Work,
    autocast_context,
    load_checkpoint,
    precision_options,
    read_run_record,
    read_selection,
    resolve_variant,
    save_checkpoint,
    select_device,
    static_variant,
    timed_steps,
    work_autocast,
    write_run_record,
)

from .networks import GroupedPair, PatchDiscriminator, ResnetGenerator, init_normal
from .pool import ImageHistory

__all__ = ["CycleGanGenerator", "CycleGanConfig", "LOSS_NAMES"]

CHECKPOINT = "checkpoint.pt"
# translations of at least this many images replay a captured CUDA graph per image on a GPU (a
# sample grid of a few images during a fit is not worth a capture)
REPLAY_MIN_IMAGES = 16
LOSS_NAMES = ("G_gan_y", "G_gan_x", "cycle_x", "cycle_y", "idt_y", "idt_x", "D_y", "D_x")
# config fields that define the training trajectory: a resumed run must agree on them
_TRAJECTORY = ("image_size", "load_size", "flip", "n_blocks", "ngf", "ndf", "n_layers_d", "lr", "beta1", "beta2",
               "lambda_cycle", "lambda_identity", "pool_size", "n_epochs", "n_epochs_decay", "batch_size",
               "x_class", "y_class", "target_data", "selection")


class CycleGanConfig(ae.PluginConfig):
    """Configuration of :class:`CycleGanGenerator` (defaults = the paper's settings)."""

    image_size: int = Field(256, ge=32, description="side length of the images (multiple of 4, ≥ 32)")
    x_class: str | None = Field(None, description="domain X = training images of this class (e.g. NV)")
    y_class: str | None = Field(None, description="domain Y = images of this class (e.g. MEL); output label")
    target_data: str | None = Field(None, description="dataset path for domain Y (default: the training data)")
    selection: str | None = Field(None, description="path-rank selection JSON restricting domain Y to its ids")
    n_blocks: int | None = Field(None, ge=0, description="residual blocks; None = 9 at ≥ 256 px, else 6")
    ngf: int = Field(64, ge=1, description="generator filters in the first layer")
    ndf: int = Field(64, ge=1, description="discriminator filters in the first layer")
    n_layers_d: int = Field(3, ge=1, description="PatchGAN stride-2 layers (3 = 70×70 patches)")
    load_size: int | None = Field(None, description="resize before random crop; None = image_size·286/256")
    flip: bool = Field(True, description="random horizontal flips")
    lr: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    lambda_cycle: float = Field(10.0, ge=0, description="weight of the cycle-consistency loss")
    lambda_identity: float = Field(0.5, ge=0, description="identity loss weight, relative to lambda_cycle")
    pool_size: int = Field(50, ge=0, description="history of generated images for the discriminators")
    n_epochs: int = Field(100, ge=0, description="epochs at the initial learning rate")
    n_epochs_decay: int = Field(100, ge=0, description="epochs of linear decay to zero")
    iterations: int | None = Field(None, ge=1, description="stop after this many iterations (quick runs)")
    batch_size: int = Field(1, ge=1)
    # speed knobs: "auto" = measured at the start of a fit (augengine.autotune), recorded in run.json
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="autocast precision; auto = measured (bf16 is a candidate where native)")
    channels_last: bool | Literal["auto"] = Field("auto", description="channels-last memory format; auto = measured")
    compile: bool | Literal["auto"] = Field("auto", description="torch.compile the training networks; auto = measured")
    cudagraphs: bool | Literal["auto"] = Field(
        "auto", description="compile in torch.compile's reduce-overhead mode: the compiled graphs replay as CUDA "
                            "graphs (one launch each instead of one per kernel; batch-1 GPU steps are launch-bound). "
                            "Implies compile; a candidate of auto on CUDA devices only; elsewhere plain compile")
    batched_passes: bool | Literal["auto"] = Field(
        "auto", description="run G(x) with the identity pass G(y), and each D on real and fake, as one batch "
                            "(same losses: instance norm is per image); auto = measured")
    grouped: bool | Literal["auto"] = Field(
        "auto", description="run G and F (and D_x and D_y) as one network with grouped convolutions (same "
                            "losses: each group is one network); auto = measured")
    checkpoint_every: int = Field(500, ge=1, description="iterations between checkpoints")
    sample_every: int = Field(1000, ge=0, description="iterations between sample grids (0 = none)")
    log_every: int = Field(10, ge=1, description="iterations between loss records")
    device: str = Field("auto", description="auto | cpu | cuda")
    deterministic: bool = Field(False, description="bit-reproducible training on CUDA too (deterministic kernels only; costs speed there); CPU fits are reproducible without it")

    @model_validator(mode="after")
    def _check(self) -> "CycleGanConfig":
        if self.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {self.image_size}")
        if self.load_size is not None and self.load_size < self.image_size:
            raise ValueError(f"load_size must be ≥ image_size ({self.image_size}), got {self.load_size}")
        if self.n_epochs + self.n_epochs_decay < 1:
            raise ValueError("n_epochs + n_epochs_decay must be ≥ 1")
        return self

    @property
    def blocks(self) -> int:
        return self.n_blocks if self.n_blocks is not None else (9 if self.image_size >= 256 else 6)

    @property
    def crop_from(self) -> int:
        return self.load_size or int(round(self.image_size * 286 / 256))


def _step_generator(seed: int, step: int, salt: int) -> torch.Generator:
    """A CPU generator that depends only on (seed, step, salt): data order survives resume."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7919 + salt) % (2**63 - 1))


class CycleGanGenerator(ae.Generator):
    """CycleGAN (Zhu et al. 2017): unpaired translation of domain X into domain Y."""

    name = "cyclegan"
    mode = "translate"
    Config = CycleGanConfig

    def __init__(self, config=None, **overrides):
        super().__init__(config, **overrides)
        self.device = select_device(self.config.device)
        self.out_label: int | None = None
        self.history: list[list[float]] = []
        self.step = 0
        self._on_step = None  # test hook: called with the finished iteration count
        self.speed: Resolution | None = None  # the resolved speed variant (set by fit or load)

    # -- networks ----------------------------------------------------------------------
    def _build(self, seed: int) -> None:
        c = self.config
        torch.manual_seed(seed)  # global generator: the engine isolates it from the caller around fit
        self.G = init_normal(ResnetGenerator(c.blocks, c.ngf)).to(self.device)  # X → Y
        self.F = init_normal(ResnetGenerator(c.blocks, c.ngf)).to(self.device)  # Y → X
        self.D_x = init_normal(PatchDiscriminator(c.ndf, c.n_layers_d)).to(self.device)
        self.D_y = init_normal(PatchDiscriminator(c.ndf, c.n_layers_d)).to(self.device)
        v = self.variant
        if v.channels_last:
            for m in (self.G, self.F, self.D_x, self.D_y):
                m.to(memory_format=torch.channels_last)
        self._nets = {"G": self.G, "F": self.F, "D_x": self.D_x, "D_y": self.D_y}
        self._replays: dict[tuple, Any] = {}  # CUDA graphs of the per-image inference (see _per_image)
        if v.grouped:  # the pairs own the weights; G, F, D_x, D_y become views into them
            self._call = {"GF": GroupedPair(self.G, self.F), "D": GroupedPair(self.D_y, self.D_x)}
        else:
            self._call = dict(self._nets)
        self._trained = dict(self._call)  # modules whose parameters the optimizers update
        if v.compile:
            # static shapes: a network sees two batch sizes per step at most (batched passes), and
            # by default the second would recompile it for a symbolic batch size — slower kernels
            # and shape arithmetic in every call, for no fewer graphs
            self._call = {k: torch.compile(m, mode=v.compile_mode, dynamic=False) for k, m in self._call.items()}

    @property
    def variant(self) -> Variant:
        """The speed variant in use: the resolved one after fit/load, else fixed settings as given and
        ``auto`` knobs at their safe value (fp32, contiguous, unbatched, ungrouped, eager)."""
        return self.speed.variant if self.speed is not None else static_variant(self._requested())

    def _requested(self) -> dict[str, Any]:
        c = self.config
        return {"precision": c.precision, "channels_last": c.channels_last, "batched": c.batched_passes,
                "grouped": c.grouped, "compile": c.compile, "cudagraphs": c.cudagraphs}

    @staticmethod
    def _speed_options(device: torch.device) -> dict[str, list[Any]]:
        """The values ``auto`` may take on ``device`` (CUDA graphs only where there are any)."""
        flags = [False, True]
        return {"precision": precision_options(device), "channels_last": flags, "batched": flags,
                "grouped": flags, "compile": flags, "cudagraphs": flags if device.type == "cuda" else [False]}

    def _arch(self) -> str:
        c = self.config
        return f"G{c.blocks}x{c.ngf}-D{c.n_layers_d}x{c.ndf}-batch{c.batch_size}-idt{int(c.lambda_identity > 0)}"

    def _resolve_speed(self, total_steps: int, recorded: dict | None = None, progress: bool = False) -> Resolution:
        """Resolve the ``auto`` speed knobs for a fit of ``total_steps`` iterations (see augengine.autotune)."""
        self.speed = resolve_variant(
            plugin=self.name, arch=self._arch(), image_size=self.config.image_size, device=self.device,
            requested=self._requested(), trial=PluginTrial(self), total_steps=total_steps, recorded=recorded,
            options=self._speed_options(self.device),
            log=(lambda msg: tqdm.write(msg)) if progress else None)
        return self.speed

    def _trial(self, v: Variant, n: int) -> list[float]:
        """Seconds of each of ``n`` training steps of variant ``v`` on throwaway networks and random
        images (the caller's RNG state is left as it was)."""
        c = self.config
        probe = type(self)(**{**c.model_dump(), "precision": v.precision, "channels_last": v.channels_last,
                              "batched_passes": v.batched, "grouped": v.grouped, "compile": v.compile,
                              "cudagraphs": v.cudagraphs})
        probe.device = self.device
        probe.speed = Resolution(v, "fixed")
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            probe._build(0)
            probe._make_optim()
            probe.pool_x, probe.pool_y = ImageHistory(c.pool_size, 1), ImageHistory(c.pool_size, 2)
            g = torch.Generator().manual_seed(0)
            shape = (c.batch_size, c.image_size, c.image_size, 3)
            xs = [probe._to_model(torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)) for _ in range(2)]
            return timed_steps(lambda i: probe._train_step(xs[i % 2], xs[(i + 1) % 2]), n, self.device)

    @classmethod
    def work(cls, config, *, phase, n_images=0, class_counts=None, **context):
        """``fit``: ``max(|X|, |Y|) / batch_size`` iterations per epoch × (``n_epochs`` +
        ``n_epochs_decay``), capped by ``iterations`` (the counts are those before a selection:
        Y rarely sets the epoch); ``generate``: one G forward pass per translated image. The speed
        variant is the one autotune has cached for this machine, else the safe one."""
        c = cls.Config.model_validate(dict(config))
        counts = dict(class_counts or {})

        def instance(s, device):
            g = cls(**{**c.model_dump(), "image_size": s, "device": "cpu"})
            g.device = torch.device(device)
            at = torch.device("cpu") if g.device.type == "meta" else g.device
            g.speed = resolve_variant(
                plugin=cls.name, arch=g._arch(), image_size=s, device=at, requested=g._requested(), trial=None,
                total_steps=0, options=cls._speed_options(at))
            if g.device.type == "meta" and g.speed.variant.compile:
                g.speed = Resolution(dataclasses.replace(g.speed.variant, compile=False, cudagraphs=False), "fixed")
            g._autocast = lambda: work_autocast(g.device, g.amp_dtype)  # meta has no autocast
            with torch.random.fork_rng(devices=[]):
                g._build(0)
            return g

        def make_train(b, s, device):
            g = instance(s, device)
            g._make_optim()
            g.pool_x, g.pool_y = ImageHistory(c.pool_size, 1), ImageHistory(c.pool_size, 2)
            xs = [g._to_model(torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8)) for _ in range(2)]

            def step():
                try:
                    g._train_step(xs[0], xs[1])
                except NotImplementedError:  # meta: the losses' copy to the CPU, after every FLOP is counted
                    if g.device.type != "meta":
                        raise

            return step

        def make_generate(b, s, device):
            g = instance(s, device)
            x = torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8)

            @torch.no_grad()
            def step():
                with g._autocast():
                    g.G(g._to_model(x))

            return step

        s = c.image_size
        probe = cls(**{**c.model_dump(), "device": "cpu"})
        key = {"plugin": cls.name, "arch": probe._arch(), **probe._requested(),
               "autotune": {"plugin": cls.name, "arch": probe._arch(), "image_size": s}}
        if phase == "fit":
            nx = counts.get(c.x_class, n_images) if c.x_class else n_images
            ny = counts.get(c.y_class, nx) if c.y_class and not c.target_data else nx
            total = -(-max(nx, ny) // c.batch_size) * (c.n_epochs + c.n_epochs_decay)
            if c.iterations is not None:
                total = min(total, c.iterations)
            return [Work(f"cyclegan {s} px train step, batch {c.batch_size}", total, {**key, "mode": "train"},
                         c.batch_size, s, make=make_train, min_size=min(s, 64))]
        if phase == "generate":
            return [Work(f"cyclegan {s} px G forward, batch 1", n_images, {**key, "mode": "generate"}, 1, s,
                         make=make_generate, min_size=min(s, 64))]
        return []

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return self.variant.autocast_dtype()  # fp16 would need loss scaling: not offered

    @property
    def use_channels_last(self) -> bool:
        return self.variant.channels_last

    def _autocast(self):
        return autocast_context(self.device, self.amp_dtype)

    def _to_model(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        return ae.to_model(x, self.device, channels_last=self.use_channels_last)

    # -- domains -----------------------------------------------------------------------
    def _domains(self, train: ae.ImageSet, x: ae.ImageSet | None, y: ae.ImageSet | None):
        """(X set, X indices, Y set, Y indices) from the config and the fit inputs."""
        c = self.config
        if x is not None:
            xs, xi = x, np.arange(len(x))
        else:
            if c.x_class is None:
                raise ConfigError("generator 'cyclegan': config key 'x_class' is required to take domain X "
                                  "from the training data (e.g. -o x_class=NV)")
            xs, xi = train, np.flatnonzero(train.labels == train.class_index(c.x_class))
        if y is not None:
            ys, yi = y, np.arange(len(y))
        else:
            ys = _load_dataset(c.target_data, c.crop_from) if c.target_data else train
            if c.y_class is None and not c.target_data:
                raise ConfigError("generator 'cyclegan': config key 'y_class' is required to take domain Y "
                                  "from the training data (e.g. -o y_class=MEL)")
            yi = np.arange(len(ys)) if c.y_class is None else np.flatnonzero(ys.labels == ys.class_index(c.y_class))
        if c.selection:
            yi = self._apply_selection(c.selection, ys, yi)
        if len(xi) == 0:
            raise DataError(f"generator 'cyclegan': domain X is empty (x_class={c.x_class!r})")
        if len(yi) == 0:
            raise DataError(f"generator 'cyclegan': domain Y is empty (y_class={c.y_class!r})")
        return xs, xi, ys, yi

    def _apply_selection(self, path: str, ys: ae.ImageSet, yi: np.ndarray) -> np.ndarray:
        p = Path(path)
        sel = read_selection(p)
        ids = [str(i) for i in sel["ids"]]
        cls = sel.get("target_class")
        if cls and self.config.y_class and str(cls).lower() != self.config.y_class.lower():
            raise ConfigError(f"{p}: selection is for class {cls!r}, but y_class is {self.config.y_class!r}")
        wanted = set(ids)
        keep = np.array([i for i in yi if ys.ids[i] in wanted], dtype=np.int64)
        if len(keep) != len(wanted):
            raise DataError(f"{p}: {len(wanted) - len(keep)} of {len(wanted)} selected ids are not among the "
                            f"{len(yi)} images of domain Y (another dataset or split?)")
        return keep

    # -- training ----------------------------------------------------------------------
    def fit(self, train: ae.ImageSet, *, val=None, run_dir=None, resume: bool = False, seed: int = 0,
            progress: bool = True, x: ae.ImageSet | None = None, y: ae.ImageSet | None = None,
            **inputs: Any) -> "CycleGanGenerator":
        """Train G: X → Y and F: Y → X on unpaired images.

        Args:
            train: the real training split; domains come from ``x_class``/``y_class``
                (Y from ``target_data`` when set, restricted by ``selection``).
            run_dir: where ``checkpoint.pt``, ``run.json`` and ``samples/`` go.
            resume: continue from ``run_dir/checkpoint.pt`` (exactly, schedule included).
            seed: initialisation, data order and history seed.
            x, y: explicit domain sets (override the config; used by compositions).

        Returns:
            ``self``.

        Raises:
            TrainingDiverged: a loss became NaN/inf (the message names the iteration).
        """
        if inputs:
            raise ConfigError(f"generator 'cyclegan': unknown fit inputs {sorted(inputs)} (known: x, y)")
        c = self.config
        run_dir = Path(run_dir) if run_dir is not None else None
        xs, xi, ys, yi = self._domains(train, x, y)
        self.class_names = list(ys.class_names)
        present = np.unique(ys.labels[yi])
        if c.y_class is not None:
            self.out_label = ys.class_index(c.y_class)
        elif len(present) == 1:
            self.out_label = int(present[0])
        else:
            raise ConfigError("generator 'cyclegan': domain Y holds several classes; set y_class to name the "
                              "label of the translated images")
        self.train_counts = {n: int(k) for n, k in
                             zip(self.class_names, np.bincount(ys.labels[yi], minlength=len(self.class_names)))}
        L = c.crop_from
        X = torch.from_numpy(np.ascontiguousarray(xs.images(L)[xi]))
        Y = torch.from_numpy(np.ascontiguousarray(ys.images(L)[yi]))
        epoch_len = -(-max(len(X), len(Y)) // c.batch_size)
        total = epoch_len * (c.n_epochs + c.n_epochs_decay)
        if c.iterations is not None:
            total = min(total, c.iterations)
        self._meta = {"x_count": len(X), "y_count": len(Y), "epoch_len": epoch_len, "seed": int(seed),
                      "x_fingerprint": _fingerprint(X), "y_fingerprint": _fingerprint(Y)}

        # speed variant: a resumed run keeps the one it was trained with (same numerics)
        recorded = None
        if resume and run_dir is not None and (run_dir / CHECKPOINT).exists():
            try:
                recorded = read_run_record(run_dir).get("speed")
            except (DataError, ConfigError, OSError):
                recorded = None
        self._resolve_speed(total, recorded=recorded, progress=progress)
        self._build(seed)
        self._make_optim()
        self.pool_x, self.pool_y = ImageHistory(c.pool_size, seed + 1), ImageHistory(c.pool_size, seed + 2)
        self.step, self.history = 0, []
        ckpt = run_dir / CHECKPOINT if run_dir is not None else None
        if resume and ckpt is not None and ckpt.exists():  # the engine refused a used run_dir without resume
            self._restore(load_checkpoint(ckpt), check=True)
        self.run_dir = run_dir
        fixed = xs.images(c.image_size)[xi[np.linspace(0, len(xi) - 1, min(4, len(xi))).astype(int)]]

        bar = tqdm(total=total, initial=self.step, desc="fit cyclegan", unit="it", disable=not progress)
        perm, perm_epoch = None, -1
        pending: list[torch.Tensor] = []  # losses of the iterations since they were last read
        while self.step < total:
            epoch, pos = divmod(self.step, epoch_len)
            if epoch != perm_epoch:
                perm = torch.randperm(epoch_len * c.batch_size, generator=_step_generator(seed, epoch, 1))
                perm_epoch = epoch
            g = _step_generator(seed, self.step, 2)
            ia = perm[pos * c.batch_size:(pos + 1) * c.batch_size] % len(X)
            ib = torch.randint(len(Y), (c.batch_size,), generator=g)
            real_x = self._to_model(_crop_flip(X[ia], c.image_size, c.flip, g))
            real_y = self._to_model(_crop_flip(Y[ib], c.image_size, c.flip, g))
            pending.append(self._train_step(real_x, real_y))
            self.step += 1
            if self.step % epoch_len == 0:
                self.sched_G.step()
                self.sched_D.step()
            # the losses stay on the device until a log line, sample grid or checkpoint needs them
            # (reading them every iteration would make a GPU wait for each step); every
            # iteration's losses are still checked, before anything is written
            due_log = self.step % c.log_every == 0 or self.step == total
            due_sample = run_dir is not None and c.sample_every and self.step % c.sample_every == 0
            due_ckpt = ckpt is not None and (self.step % c.checkpoint_every == 0 or self.step == total)
            if due_log or due_sample or due_ckpt or self._on_step is not None:
                rows = torch.stack(pending).tolist()
                pending.clear()
                for k, losses in enumerate(rows):
                    if not all(math.isfinite(v) for v in losses):
                        it = self.step - len(rows) + 1 + k
                        bad = LOSS_NAMES[[i for i, v in enumerate(losses) if not math.isfinite(v)][0]]
                        raise TrainingDiverged(
                            f"generator 'cyclegan': loss {bad} became {losses[LOSS_NAMES.index(bad)]} at iteration "
                            f"{it} (epoch {(it - 1) // epoch_len + 1}); lower lr or use precision=fp32"
                            + (f"; last good checkpoint in {run_dir}" if ckpt is not None and ckpt.exists() else ""))
            if due_log:
                self.history.append([float(self.step), *losses, self.lr])
                bar.set_postfix(G=f"{sum(losses[:6]):.3f}", D=f"{losses[6] + losses[7]:.3f}", lr=f"{self.lr:.2e}")
            if due_sample:
                self.write_samples(fixed, run_dir / "samples" / f"iter_{self.step:07d}.png")
            if due_ckpt:
                save_checkpoint(self._state(), ckpt)
                self._write_record(run_dir)
            bar.update(1)
            if self._on_step is not None:
                self._on_step(self.step)
        bar.close()
        if run_dir is not None and not ckpt.exists():
            save_checkpoint(self._state(), ckpt)
            self._write_record(run_dir)
        return self

    @property
    def lr(self) -> float:
        return float(self.opt_G.param_groups[0]["lr"])

    def _lr_factor(self, epoch: int) -> float:
        # LambdaLR counts finished epochs from 0; epoch e (0-based) runs at this factor
        c = self.config
        return 1.0 - max(0, epoch + 1 - c.n_epochs) / float(c.n_epochs_decay + 1)

    def _make_optim(self) -> None:
        c = self.config
        betas = (c.beta1, c.beta2)
        # the fused kernel computes Adam's update in one pass over all parameters (the same
        # formula as the per-tensor loop; far fewer operator launches)
        fused = self.device.type in ("cpu", "cuda")
        if self.variant.grouped:
            g_params, d_params = list(self._trained["GF"].parameters()), list(self._trained["D"].parameters())
        else:
            g_params = [*self.G.parameters(), *self.F.parameters()]
            d_params = [*self.D_x.parameters(), *self.D_y.parameters()]
        self._d_params = d_params
        # fp16 autocast steps through a GradScaler; bf16/fp32 steps are plain (augengine.plugin_api.LossScaler)
        self.loss_scaler = LossScaler(self.device, self.amp_dtype)
        self.opt_G = torch.optim.Adam(g_params, lr=c.lr, betas=betas, fused=fused)
        self.opt_D = torch.optim.Adam(d_params, lr=c.lr, betas=betas, fused=fused)
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, self._lr_factor)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, self._lr_factor)

    def _train_step(self, real_x: torch.Tensor, real_y: torch.Tensor) -> list[float]:
        """One iteration: generator update, then discriminator update (LSGAN).

        Shape:
            - real_x, real_y: :math:`(B, 3, S, S)` in [-1, 1].

        Returns:
            the eight losses of :data:`LOSS_NAMES`, a detached float tensor on the device (reading
            it waits for the step: the fit reads them only when it logs or checkpoints).
        """
        c = self.config
        v = self.variant
        b = real_x.shape[0]
        lam, lam_idt = c.lambda_cycle, c.lambda_cycle * c.lambda_identity
        gen, disc = self._gen_pass, self._disc_pass
        if v.cudagraphs:
            # a new iteration: the CUDA graphs' output buffers of the last one may be reused (all
            # that outlives a step is copied out of them: the history's images, the losses)
            torch.compiler.cudagraph_mark_step_begin()
        for p in self._d_params:
            p.requires_grad_(False)
        with self._autocast():
            if lam_idt > 0 and v.batched:
                out_g, out_f = gen(torch.cat([real_x, real_y]), torch.cat([real_y, real_x]))
                (fake_y, idt_y), (fake_x, idt_x) = out_g.split(b), out_f.split(b)
            else:
                fake_y, fake_x = gen(real_x, real_y)
                idt_y, idt_x = gen(real_y, real_x) if lam_idt > 0 else (None, None)
            rec_y, rec_x = gen(fake_x, fake_y)
            pred_y, pred_x = disc(fake_y, fake_x)
            pred_y, pred_x = pred_y.float(), pred_x.float()
        g_gan_y = F.mse_loss(pred_y, torch.ones_like(pred_y))
        g_gan_x = F.mse_loss(pred_x, torch.ones_like(pred_x))
        cyc_x = F.l1_loss(rec_x.float(), real_x) * lam
        cyc_y = F.l1_loss(rec_y.float(), real_y) * lam
        if lam_idt > 0:
            l_idt_y = F.l1_loss(idt_y.float(), real_y) * lam_idt
            l_idt_x = F.l1_loss(idt_x.float(), real_x) * lam_idt
        else:
            l_idt_y = l_idt_x = torch.zeros((), device=real_x.device)
        loss_G = g_gan_y + g_gan_x + cyc_x + cyc_y + l_idt_y + l_idt_x
        self.opt_G.zero_grad(set_to_none=True)
        self.loss_scaler.backward(loss_G)
        self.loss_scaler.step(self.opt_G)
        for p in self._d_params:
            p.requires_grad_(True)

        hist_y = self.pool_y.query(fake_y).float()
        hist_x = self.pool_x.query(fake_x).float()
        if self.use_channels_last:
            hist_y = hist_y.contiguous(memory_format=torch.channels_last)
            hist_x = hist_x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            if v.batched:
                out_y, out_x = disc(torch.cat([real_y, hist_y]), torch.cat([real_x, hist_x]))
                (pr_y, pf_y), (pr_x, pf_x) = out_y.float().split(b), out_x.float().split(b)
            else:
                pr_y, pr_x = (t.float() for t in disc(real_y, real_x))
                pf_y, pf_x = (t.float() for t in disc(hist_y, hist_x))
        d_y = 0.5 * (F.mse_loss(pr_y, torch.ones_like(pr_y)) + F.mse_loss(pf_y, torch.zeros_like(pf_y)))
        d_x = 0.5 * (F.mse_loss(pr_x, torch.ones_like(pr_x)) + F.mse_loss(pf_x, torch.zeros_like(pf_x)))
        self.opt_D.zero_grad(set_to_none=True)
        self.loss_scaler.backward(d_y + d_x)
        self.loss_scaler.step(self.opt_D)
        self.loss_scaler.update()
        return torch.stack([g_gan_y, g_gan_x, cyc_x, cyc_y, l_idt_y, l_idt_x, d_y, d_x]).detach().float()

    def _gen_pass(self, for_g: torch.Tensor, for_f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(G(for_g), F(for_f))`` — one grouped pass when the variant groups the generators."""
        if "GF" in self._call:
            return GroupedPair.pair(self._call["GF"](torch.cat([for_g, for_f], 1)))
        return self._call["G"](for_g), self._call["F"](for_f)

    def _disc_pass(self, for_y: torch.Tensor, for_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(D_y(for_y), D_x(for_x))`` — one grouped pass when the variant groups the discriminators."""
        if "D" in self._call:
            return GroupedPair.pair(self._call["D"](torch.cat([for_y, for_x], 1)))
        return self._call["D_y"](for_y), self._call["D_x"](for_x)

    # -- state -------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "format": 1,
            "step": int(self.step),
            **{k: m.state_dict() for k, m in self._nets.items()},
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "scaler": self.loss_scaler.state_dict(),
            "sched_G": self.sched_G.state_dict(), "sched_D": self.sched_D.state_dict(),
            "pool_x": self.pool_x.state_dict(), "pool_y": self.pool_y.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "history": torch.tensor(self.history, dtype=torch.float64).reshape(-1, len(LOSS_NAMES) + 2),
            "meta": {**self._meta, "class_names": list(self.class_names), "out_label": int(self.out_label),
                     "train_counts": dict(self.train_counts), "config": self.config.model_dump(mode="json")},
        }
        if torch.cuda.is_available() and self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore(self, state: dict[str, Any], check: bool) -> None:
        meta = state["meta"]
        if check:
            saved = meta["config"]
            now = self.config.model_dump(mode="json")
            diff = [k for k in _TRAJECTORY if saved.get(k) != now.get(k)]
            if diff:
                k = diff[0]
                raise ConfigError(f"generator 'cyclegan': cannot resume: config key {k!r} was {saved.get(k)!r} "
                                  f"in the checkpoint, now {now.get(k)!r}")
            for k in ("x_fingerprint", "y_fingerprint", "seed"):
                if meta.get(k) != self._meta.get(k):
                    raise DataError(f"generator 'cyclegan': cannot resume: {k} differs from the checkpoint's "
                                    "(other data, split or seed)")
        for k, m in self._nets.items():
            m.load_state_dict(state[k])
        if "opt_G" in state and hasattr(self, "opt_G"):
            self.opt_G.load_state_dict(state["opt_G"])
            self.opt_D.load_state_dict(state["opt_D"])
            self.loss_scaler.load_state_dict(state.get("scaler"))
            self.sched_G.load_state_dict(state["sched_G"])
            self.sched_D.load_state_dict(state["sched_D"])
            self.pool_x.load_state_dict(state["pool_x"], self.device)
            self.pool_y.load_state_dict(state["pool_y"], self.device)
            torch.set_rng_state(state["rng_torch"])
            if "rng_cuda" in state and self.device.type == "cuda":
                torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        self.step = int(state["step"])
        self.history = state["history"].tolist()
        self.class_names = list(meta["class_names"])
        self.out_label = int(meta["out_label"])
        self.train_counts = {str(k): int(v) for k, v in meta["train_counts"].items()}
        self._meta = {k: meta[k] for k in ("x_count", "y_count", "epoch_len", "seed", "x_fingerprint", "y_fingerprint")}

    def _write_record(self, run_dir: Path) -> None:
        write_run_record(run_dir, self, class_names=self.class_names, out_label=self.out_label,
                         out_class=self.class_names[self.out_label], train_counts=self.train_counts,
                         step=self.step, seed=self._meta["seed"], x_count=self._meta["x_count"],
                         y_count=self._meta["y_count"], speed=self.speed.record() if self.speed else None)

    def save(self, run_dir) -> Path:
        """Write ``checkpoint.pt`` (full training state) and ``run.json`` into ``run_dir``."""
        if not hasattr(self, "G"):
            raise PluginError("generator 'cyclegan': nothing to save; call fit() first")
        run_dir = Path(run_dir)
        if not (self.run_dir is not None and Path(self.run_dir).resolve() == run_dir.resolve()
                and (run_dir / CHECKPOINT).exists()):
            save_checkpoint(self._state(), run_dir / CHECKPOINT)
        self._write_record(run_dir)
        self.run_dir = run_dir
        return run_dir

    @classmethod
    def load(cls, run_dir, device: str | None = None) -> "CycleGanGenerator":
        """Reopen a run written by :meth:`fit`/:meth:`save` (``weights_only`` checkpoint)."""
        run_dir = Path(run_dir)
        record = read_run_record(run_dir)
        cfg = dict(record["config"])
        if device is not None:
            cfg["device"] = device
        self = cls(**cfg)
        if record.get("speed"):
            speed = Resolution.from_record(record["speed"], where=f"{run_dir / 'run.json'} speed")
            if speed.variant.precision not in precision_options(self.device):
                speed.variant = Variant(**{**speed.variant.as_dict(), "precision": "fp32"})
            self.speed = speed
        state = load_checkpoint(run_dir / CHECKPOINT, map_location=self.device)
        self._meta = dict(state["meta"])
        with torch.random.fork_rng(devices=[]):
            self._build(int(state["meta"].get("seed", 0)))
        self._restore(state, check=False)
        self.run_dir = run_dir
        return self

    # -- inference ---------------------------------------------------------------------
    @torch.no_grad()
    def _apply(self, net: str, images: np.ndarray) -> np.ndarray:
        # one image per forward pass: a convolution's rounding can depend on the batch it runs
        # in (oneDNN picks kernels by shape), and an image's translation must not depend on
        # which other images were translated with it (same seed → same set, whatever the chunking)
        # Images go to the device and come back 64 at a time (one copy each way, no wait per
        # image on a GPU); the forward passes stay one per image.
        m = self._nets[net]
        m.eval()
        out = []
        forward = self._per_image(net) if len(images) >= REPLAY_MIN_IMAGES else None
        for s in range(0, len(images), 64):
            chunk = self._to_model(images[s:s + 64])
            if forward is not None:
                res = [forward(chunk[i:i + 1]) for i in range(len(chunk))]
            else:
                with self._autocast():
                    res = [m(chunk[i:i + 1]).float() for i in range(len(chunk))]
            out.append(ae.from_model(torch.cat(res)))
        m.train()
        return np.concatenate(out) if out else np.zeros((0, self.image_size, self.image_size, 3), np.uint8)

    def _per_image(self, net: str):
        """On a CUDA device, one image's forward pass of ``net`` as a replayed CUDA graph: the
        same kernels as the eager pass (same numbers), launched as one graph instead of one by
        one — batch-1 inference of the 9-block generator is launch-bound on a GPU. Captured once
        per network and precision; the captured weights are the network's own tensors, which
        training and loading update in place. None elsewhere, or where capture fails (the
        eager pass is used then)."""
        if self.device.type != "cuda":
            return None
        key = (net, self.variant.precision, self.use_channels_last)
        if key not in self._replays:
            self._replays[key] = self._capture(net)
        return self._replays[key]

    def _capture(self, net: str):
        m = self._nets[net]
        s = self.image_size
        static_in = self._to_model(torch.zeros(1, s, s, 3, dtype=torch.uint8))
        dtype = self.amp_dtype

        def forward():  # autocast's weight cache cannot live across graph replays: off here
            if dtype is None:
                return m(static_in).float()
            with torch.autocast("cuda", dtype=dtype, cache_enabled=False):
                return m(static_in).float()

        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up: cuDNN picks its kernels outside the capture
                for _ in range(2):
                    forward()
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = forward()
        except RuntimeError as e:  # e.g. an operator that cannot be captured: the eager pass works
            warnings.warn(f"generator 'cyclegan': per-image CUDA graph of {net} not captured "
                          f"({str(e).splitlines()[0][:120]}); translating eagerly", RuntimeWarning, stacklevel=3)
            return None

        def run(x: torch.Tensor) -> torch.Tensor:
            static_in.copy_(x)
            graph.replay()
            return static_out.clone()

        return run

    def translate(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Translate domain-X images into domain Y with G.

        Args:
            images: uint8 source images (resized to ``image_size`` when needed).
            labels: their labels (any class space; the output label is ``y_class``).

        Returns:
            (translated uint8 images, int64 labels = ``y_class`` in ``class_names``).

        Shape:
            - images: :math:`(K, H, W, 3)`; labels: :math:`(K,)`.
            - output: :math:`(K, S, S, 3)` and :math:`(K,)`.
        """
        if not hasattr(self, "G") or self.out_label is None:
            raise PluginError("generator 'cyclegan': not trained; call fit() or load a run first")
        images = ae.check_images(np.asarray(images), where="generator 'cyclegan' translate(images)")
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(images):
            raise ae.ShapeError(f"generator 'cyclegan' translate(labels): expected {len(images)} labels, got {len(labels)}")
        images = ae.resize_uint8(images, self.image_size)
        return self._apply("G", images), np.full(len(images), self.out_label, dtype=np.int64)

    def write_samples(self, images: np.ndarray, path: Path) -> Path:
        """Save a grid with rows x, G(x), F(G(x)) (torchvision ``make_grid``) as PNG."""
        from torchvision.utils import save_image

        fake = self._apply("G", images)
        rec = self._apply("F", fake)
        rows = np.concatenate([images, fake, rec])
        grid = torch.from_numpy(rows).permute(0, 3, 1, 2).float() / 255.0
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path, nrow=len(images), padding=2)
        return path


def _crop_flip(batch: torch.Tensor, size: int, flip: bool, g: torch.Generator) -> torch.Tensor:
    """Random ``size``×``size`` crop and optional horizontal flip of uint8 B×L×L×3 images."""
    out = []
    L = batch.shape[1]
    for img in batch:
        top, left = (int(v) for v in torch.randint(L - size + 1, (2,), generator=g))
        crop = img[top:top + size, left:left + size]
        if flip and torch.rand((), generator=g).item() < 0.5:
            crop = crop.flip(1)
        out.append(crop)
    return torch.stack(out)


def _fingerprint(t: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(t.numpy().tobytes()).hexdigest()


def _load_dataset(path: str, size: int) -> ae.ImageSet:
    """A whole dataset as an ImageSet (for ``target_data``), decoded at ``size``."""
    return ae.load_dataset(path).image_set(size=size)