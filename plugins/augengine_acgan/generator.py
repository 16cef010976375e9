"""The ``acgan`` generator plugin: training loop, checkpoints, sampling, save/load."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from tqdm.auto import tqdm

import augengine
from augengine import ConfigError, DataError, PluginError, TrainingDiverged, from_model, to_model
from augengine.plugin_api import (
    LossScaler,
    PluginTrial,
    Resolution,
    Variant,
    autocast_context,
    load_checkpoint,
    precision_options,
    read_run_record,
    resolve_variant,
    save_checkpoint,
    static_variant,
    timed_steps,
    select_device,
    Work,
    tensor_view,
    work_autocast,
    write_run_record,
)

from augengine_acgan.diffaugment import diff_augment
from augengine_acgan.models import AcganD, AcganG, g_stage_channels, init_weights

__all__ = ["AcganConfig", "AcganGenerator"]

CHECKPOINT = "checkpoint.pt"
LOSS_LOG = "losses.jsonl"


class AcganConfig(augengine.PluginConfig):
    """Configuration of :class:`AcganGenerator`. Defaults follow Odena et al. (2017), ImageNet
    128×128 appendix table; every option marked "not in the paper" is off by default."""

    image_size: int = Field(128, description="output side in px; 128 = paper; 32/64 drop upsampling stages (8·2^k)")
    latent_dim: int = Field(100, ge=1, description="noise size (paper: 100 + one-hot class)")
    class_embedding: Literal["onehot", "embedding"] = Field(
        "onehot", description="class input to G: one-hot concatenated to z (paper) or a learned embedding")
    embedding_dim: int = Field(100, ge=1, description="size of the learned class embedding (class_embedding=embedding)")
    g_channels: list[int] = Field([768, 384, 256, 192], description="G widths: linear output (at 8×8), then hidden stages")
    d_channels: list[int] = Field([16, 32, 64, 128, 256, 512], description="D conv widths (3×3)")
    d_strides: list[int] = Field([2, 1, 2, 1, 2, 1], description="D conv strides")
    d_dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout after each D conv (paper 0.5)")
    leaky_slope: float = Field(0.2, ge=0.0, description="LeakyReLU slope in D")
    init_std: float = Field(0.02, gt=0.0, description="std of the N(0, σ) weight init")
    batch_size: int = Field(100, ge=2, description="images per batch (paper: 100)")
    iterations: int = Field(50000, ge=1, description="training iterations (paper: 50000)")
    lr: float = Field(2e-4, gt=0.0, description="Adam learning rate of both players (paper 2e-4)")
    lr_g: float | None = Field(None, gt=0.0, description="TTUR: G learning rate (None = lr); not in the paper")
    lr_d: float | None = Field(None, gt=0.0, description="TTUR: D learning rate (None = lr); not in the paper")
    betas: tuple[float, float] = Field((0.5, 0.999), description="Adam betas (paper 0.5, 0.999)")
    loss: Literal["bce", "hinge"] = Field("bce", description="source loss: log-likelihood (paper) or hinge")
    g_source_loss: Literal["nonsaturating", "minimax"] = Field(
        "nonsaturating", description="G's source term for bce: -log D(G(z)) (usual practice) or log(1-D(G(z))) "
                                     "(the literal minimax form of the paper's L_C - L_S)")
    class_loss_weight: float = Field(1.0, ge=0.0, description="weight of the class log-likelihood L_C (paper 1)")
    spectral_norm: bool = Field(False, description="spectral norm on every D layer; not in the paper")
    diffaugment: list[Literal["color", "translation", "cutout"]] = Field(
        [], description="DiffAugment policies applied before D (small data); not in the paper")
    ema: bool = Field(False, description="keep an EMA of G's weights and sample with it; not in the paper")
    ema_decay: float = Field(0.999, gt=0.0, lt=1.0, description="EMA decay per iteration")
    balanced_real: bool = Field(False, description="sample real images class-balanced; not in the paper")
    balanced_fake_labels: bool = Field(
        False, description="generated labels uniform over the trained classes (default: the train class prior p_c)")
    checkpoint_every: int = Field(1000, ge=1, description="iterations between checkpoints")
    sample_every: int = Field(1000, ge=1, description="iterations between per-class sample grids")
    log_every: int = Field(10, ge=1, description="iterations between loss-log lines")
    grid_per_class: int = Field(8, ge=1, description="samples per class row in the sample grid")
    sample_batch_size: int = Field(64, ge=1, description="fixed batch of sample() (padded) so images do not depend on N")
    # speed knobs: "auto" = measured at the start of a fit (augengine.autotune), recorded in run.json
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="autocast precision; auto = measured (bf16 is a candidate on CUDA and CPUs with native bf16)")
    channels_last: Literal["auto", "on", "off"] = Field(
        "auto", description="channels_last memory format; auto = measured")
    compile: bool | Literal["auto"] = Field("auto", description="torch.compile G and D; auto = measured")
    device: str = Field("auto", description="auto | cpu | cuda")
    deterministic: bool = Field(False, description="bit-reproducible training on CUDA too (deterministic kernels only; costs speed there); CPU fits are reproducible without it")

    @field_validator("image_size")
    @classmethod
    def _size(cls, v: int) -> int:
        if v < 16 or v & (v - 1):
            raise ValueError("expected a power of two ≥ 16 (32, 64 or 128)")
        return v

    @model_validator(mode="after")
    def _check(self):
        try:
            g_stage_channels(self.image_size, self.g_channels)
        except ValueError as e:
            raise ValueError(str(e)) from None
        if len(self.d_channels) != len(self.d_strides):
            raise ValueError(f"d_channels ({len(self.d_channels)}) and d_strides ({len(self.d_strides)}) "
                             "need the same length")
        return self


def _rng_state_tensor(g: torch.Generator) -> torch.Tensor:
    return g.get_state().clone()


class BatchSampler:
    """Draws real-image indices and generated labels from one ``torch.Generator``.

    Args:
        labels: (N,) int labels of the training images.
        num_classes: K.
        balanced_real: pick a class uniformly (among classes with images), then an image of
            it; otherwise images uniformly (classes at their training frequency).
        balanced_fake_labels: generated labels uniform over classes with images; otherwise
            drawn from the training class prior p_c.
    """

    def __init__(self, labels, num_classes: int, balanced_real: bool = False, balanced_fake_labels: bool = False):
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.counts = torch.bincount(self.labels, minlength=num_classes)
        self.present = torch.nonzero(self.counts > 0).flatten()
        self.order = torch.argsort(self.labels, stable=True)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        self.balanced_real = balanced_real
        self.p_fake = (self.counts > 0).double() if balanced_fake_labels else self.counts.double()

    def real(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """(n,) int64 indices into the training images."""
        if self.balanced_real:
            cls = self.present[torch.randint(len(self.present), (n,), generator=rng)]
            off = (torch.rand(n, generator=rng, dtype=torch.float64) * self.counts[cls]).long()
            return self.order[self.starts[cls] + off]
        return torch.randint(len(self.labels), (n,), generator=rng)

    def fake_labels(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """(n,) int64 class labels for generated images."""
        return torch.multinomial(self.p_fake, n, replacement=True, generator=rng)


class AcganGenerator(augengine.Generator):
    """ACGAN (Odena et al. 2017): class-conditional images from noise, with an auxiliary classifier D.

    Training follows the paper: D maximises L_S + L_C, G maximises L_C − L_S, where L_S is the
    log-likelihood of the correct source (real/fake) and L_C of the correct class, on real
    and generated images; Adam(2e-4, 0.5, 0.999) for both. Options beyond the paper (hinge
    loss, spectral norm, DiffAugment, EMA, TTUR, class-balanced sampling) are off by default.

    Run directory: ``checkpoint.pt`` (G, D, optimisers, EMA, RNG states, step; loads with
    ``weights_only=True``), ``run.json``, ``losses.jsonl`` + ``losses.png``, and
    ``samples/step_XXXXXXX.png`` per-class grids from fixed noise.
    """

    name = "acgan"
    mode = "noise"
    Config = AcganConfig

    def __init__(self, config=None, **overrides: Any):
        super().__init__(config, **overrides)
        self.G: AcganG | None = None
        self.D: AcganD | None = None
        self.G_ema: AcganG | None = None
        self.class_names = []
        self.train_counts = {}
        self.step = 0
        self.device = torch.device("cpu")

    # -- runtime choices -----------------------------------------------------------------
    @property
    def variant(self) -> Variant:
        """The speed variant in use: the resolved one after fit/load, else fixed settings as given and
        ``auto`` knobs at their safe value (fp32, contiguous, eager)."""
        speed = self.__dict__.get("speed")
        return speed.variant if speed is not None else static_variant(self._requested())

    def _requested(self) -> dict[str, Any]:
        c = self.config
        return {"precision": c.precision, "channels_last": c.channels_last, "compile": c.compile}

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return self.variant.autocast_dtype()

    @property
    def use_channels_last(self) -> bool:
        return self.variant.channels_last

    def _resolve_speed(self, num_classes: int, total_steps: int, recorded: dict | None = None,
                       progress: bool = False) -> Resolution:
        """Resolve the ``auto`` speed knobs for a fit of ``total_steps`` iterations (augengine.autotune)."""
        c = self.config
        arch = (f"G{c.g_channels}-{c.class_embedding}-D{c.d_channels}-sn{int(c.spectral_norm)}-K{num_classes}"
                f"-batch{c.batch_size}-diffaug{c.diffaugment or ''}")
        flags = [False, True]
        self.speed = resolve_variant(
            plugin=self.name, arch=arch, image_size=c.image_size, device=self.device, requested=self._requested(),
            options={"precision": precision_options(self.device), "channels_last": flags, "compile": flags},
            trial=PluginTrial(self, "_trial", num_classes), total_steps=total_steps, recorded=recorded,
            log=(lambda msg: tqdm.write(msg)) if progress else None)
        return self.speed

    def _trial(self, v: Variant, n: int, num_classes: int) -> list[float]:
        """Seconds of each of ``n`` training steps of variant ``v`` on throwaway networks and random
        images (the caller's RNG state is left as it was)."""
        c = self.config
        probe = type(self)({**c.model_dump(), "precision": v.precision, "channels_last": "on" if v.channels_last else "off",
                            "compile": v.compile})
        probe.device = self.device
        probe.speed = Resolution(v, "fixed")
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            probe.build_networks(num_classes)
            opt_g = torch.optim.Adam(probe.G.parameters(), lr=c.lr)
            opt_d = torch.optim.Adam(probe.D.parameters(), lr=c.lr)
            G, D = (torch.compile(probe.G), torch.compile(probe.D)) if v.compile else (probe.G, probe.D)
            rng = torch.Generator().manual_seed(0)
            B, S = c.batch_size, c.image_size
            fmt = torch.channels_last if v.channels_last else torch.contiguous_format
            x = (torch.rand(B, 3, S, S, generator=rng) * 2 - 1).to(self.device).contiguous(memory_format=fmt)
            y = torch.randint(num_classes, (B,), generator=rng).to(self.device)
            z = torch.randn(B, c.latent_dim, generator=rng).to(self.device)
            return timed_steps(lambda i: probe.train_step(G, D, opt_g, opt_d, x, y, z, y, rng), n, self.device)

    def _autocast(self):
        return autocast_context(self.device, self.amp_dtype)

    def build_networks(self, num_classes: int) -> None:
        """Create G, D (and the EMA copy) with the paper's init on ``self.device``."""
        c = self.config
        self.G = AcganG(c.image_size, c.latent_dim, num_classes, c.g_channels, c.class_embedding, c.embedding_dim)
        self.D = AcganD(c.image_size, num_classes, c.d_channels, c.d_strides, c.d_dropout, c.leaky_slope,
                        c.spectral_norm)
        init_weights(self.G, c.init_std)
        init_weights(self.D, c.init_std)
        fmt = torch.channels_last if self.use_channels_last else torch.contiguous_format
        self.G.to(self.device, memory_format=fmt)
        self.D.to(self.device, memory_format=fmt)
        self.G_ema = None
        if c.ema:
            self.G_ema = AcganG(c.image_size, c.latent_dim, num_classes, c.g_channels, c.class_embedding,
                                c.embedding_dim).to(self.device, memory_format=fmt)
            self.G_ema.load_state_dict(self.G.state_dict())
            self.G_ema.requires_grad_(False)

    # -- training ------------------------------------------------------------------------
    def fit(self, train: augengine.ImageSet, *, val=None, run_dir=None, resume: bool = False, seed: int = 0,
            progress: bool = True, **inputs: Any) -> "AcganGenerator":
        """Train on the real training split ``train`` (``val`` is unused).

        Args:
            train: labelled real images; read once at ``image_size`` into memory (uint8).
            run_dir: where checkpoints, sample grids and logs go (None: nothing is written).
            resume: continue from ``run_dir/checkpoint.pt`` (same weights as an
                uninterrupted run with the same seed, on CPU).
            seed: seeds weights, batches, noise and dropout.
            progress: show a tqdm bar.

        Raises:
            TrainingDiverged: a loss became NaN/inf; names the step, keeps the last good checkpoint.
        """
        if inputs:
            raise ConfigError(f"generator 'acgan': fit() takes no extra inputs, got {sorted(inputs)}")
        c = self.config
        self.device = select_device(c.device)
        if len(train) == 0:
            raise DataError("generator 'acgan': the training set is empty")
        self.class_names = list(train.class_names)
        self.train_counts = train.class_counts()
        K = len(self.class_names)
        run_dir = Path(run_dir) if run_dir is not None else None
        self.run_dir = run_dir

        images = tensor_view(train.images(c.image_size))
        sampler = BatchSampler(train.labels, K, c.balanced_real, c.balanced_fake_labels)

        # the global generator (weight init, dropout) is isolated from the caller by the engine
        # around every fit (augengine.plugin_api.isolated_global_rng)
        recorded = None  # a resumed run keeps the speed variant it was trained with (same numerics)
        if resume and run_dir is not None and (run_dir / CHECKPOINT).exists():
            try:
                recorded = read_run_record(run_dir).get("speed")
            except (DataError, ConfigError, OSError):
                recorded = None
        self._resolve_speed(K, c.iterations, recorded=recorded, progress=progress)
        torch.manual_seed(seed)
        self.build_networks(K)
        lr_g, lr_d = c.lr_g or c.lr, c.lr_d or c.lr
        opt_g = torch.optim.Adam(self.G.parameters(), lr=lr_g, betas=tuple(c.betas))
        opt_d = torch.optim.Adam(self.D.parameters(), lr=lr_d, betas=tuple(c.betas))
        rng = torch.Generator().manual_seed(seed + 1)  # batches, noise, labels, DiffAugment
        torch.manual_seed(seed + 2)  # dropout
        start = 0
        self._loss_scaler = None  # a new fit starts with a new loss scale
        ckpt_path = run_dir / CHECKPOINT if run_dir is not None else None
        if resume and ckpt_path is not None and ckpt_path.exists():
            state = load_checkpoint(ckpt_path)
            self._check_state(state, ckpt_path)
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            self._scaler().load_state_dict(state.get("scaler"))
            if self.G_ema is not None:
                self.G_ema.load_state_dict(state["G_ema"])
            rng.set_state(state["rng_data"])
            torch.set_rng_state(state["rng_torch"])
            if self.device.type == "cuda" and state.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(state["rng_cuda"], self.device)
            start = int(state["step"])
            self._truncate_log(run_dir, start)
        elif run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / LOSS_LOG).unlink(missing_ok=True)
        self.step = start

        G_train, D_train = self.G, self.D
        if self.variant.compile:
            G_train, D_train = torch.compile(self.G), torch.compile(self.D)
        fmt = torch.channels_last if self.use_channels_last else torch.contiguous_format
        fixed_z, fixed_y = self._fixed_noise(seed)
        log_f = open(run_dir / LOSS_LOG, "a") if run_dir is not None else None
        bar = tqdm(total=c.iterations, initial=start, desc="fit acgan", unit="it", disable=not progress)
        B = c.batch_size
        try:
            for step in range(start + 1, c.iterations + 1):
                # --- batch (all randomness from rng) ---
                idx = sampler.real(B, rng)
                x_real = to_model(images[idx], self.device).contiguous(memory_format=fmt)
                y_real = sampler.labels[idx].to(self.device)
                z = torch.randn(B, c.latent_dim, generator=rng).to(self.device)
                y_fake = sampler.fake_labels(B, rng).to(self.device)

                out = self.train_step(G_train, D_train, opt_g, opt_d, x_real, y_real, z, y_fake, rng)
                loss_d, loss_g, c_real = out["loss_d"], out["loss_g"], out["c_real"]
                d_src, d_cls, g_src, g_cls = out["d_source"], out["d_class"], out["g_source"], out["g_class"]
                s_real, s_fake = out["s_real"], out["s_fake"]
                ld, lg = float(loss_d.detach()), float(loss_g.detach())
                if not (math.isfinite(ld) and math.isfinite(lg)):
                    which = "loss_d" if not math.isfinite(ld) else "loss_g"
                    kept = (f"last good checkpoint {ckpt_path} (step {self._ckpt_step(ckpt_path)}) kept"
                            if ckpt_path is not None and ckpt_path.exists() else "no checkpoint written yet")
                    raise TrainingDiverged(
                        f"generator 'acgan': {which} became {ld if which == 'loss_d' else lg} at step {step}; "
                        f"{kept}; try a lower lr, precision=fp32 or spectral_norm=true")
                if self.G_ema is not None:
                    self._update_ema()
                self.step = step

                if log_f is not None and (step % c.log_every == 0 or step == c.iterations):
                    acc = float((c_real.argmax(1) == y_real).float().mean())
                    log_f.write(json.dumps({
                        "step": step, "loss_d": ld, "loss_g": lg, "d_source": float(d_src.detach()), "d_class": float(d_cls.detach()),
                        "g_source": float(g_src.detach()), "g_class": float(g_cls.detach()), "d_real_class_acc": acc,
                        "d_real": float(torch.sigmoid(s_real.detach()).mean()),
                        "d_fake": float(torch.sigmoid(s_fake.detach()).mean()),
                    }) + "\n")
                if run_dir is not None and (step % c.sample_every == 0 or step == c.iterations):
                    self._save_grid(run_dir / "samples" / f"step_{step:07d}.png", fixed_z, fixed_y)
                if run_dir is not None and (step % c.checkpoint_every == 0 or step == c.iterations):
                    if log_f is not None:
                        log_f.flush()
                    save_checkpoint(self._state(opt_g, opt_d, rng), ckpt_path)
                    self._write_record(run_dir, seed, train)
                bar.update(1)
                if step % c.log_every == 0:
                    bar.set_postfix(loss_d=f"{ld:.3f}", loss_g=f"{lg:.3f}")
        finally:
            bar.close()
            if log_f is not None:
                log_f.close()
        if run_dir is not None:
            self._plot_losses(run_dir)
        self.G.eval()
        if self.G_ema is not None:
            self.G_ema.eval()
        return self

    def train_step(self, G_train, D_train, opt_g, opt_d, x_real, y_real, z, y_fake, rng) -> dict[str, torch.Tensor]:
        """One ACGAN iteration: a D step (maximise L_S + L_C), then a G step (maximise L_C − L_S).

        The G step reuses the generated batch of the D step (its graph is kept).

        Shape:
            - x_real: :math:`(B, 3, S, S)` in [-1, 1]; y_real, y_fake: :math:`(B,)` int64;
              z: :math:`(B, latent\\_dim)`.

        Returns:
            loss tensors (``loss_d``, ``loss_g``, ``d_source``, ``d_class``, ``g_source``,
            ``g_class``) and D outputs on the real/fake batches (``s_real``, ``c_real``, ``s_fake``).
        """
        c = self.config
        # --- D step: maximise L_S + L_C ---
        with self._autocast():
            fake = G_train(z, y_fake)
            s_real, c_real = D_train(self._aug(x_real, rng))
            s_fake, c_fake = D_train(self._aug(fake.detach(), rng))
            s_real, c_real, s_fake, c_fake = (t.float() for t in (s_real, c_real, s_fake, c_fake))
            if c.loss == "hinge":
                d_src = F.relu(1 - s_real).mean() + F.relu(1 + s_fake).mean()
            else:
                d_src = (F.binary_cross_entropy_with_logits(s_real, torch.ones_like(s_real))
                         + F.binary_cross_entropy_with_logits(s_fake, torch.zeros_like(s_fake)))
            d_cls = F.cross_entropy(c_real, y_real) + F.cross_entropy(c_fake, y_fake)
            loss_d = d_src + c.class_loss_weight * d_cls
        scaler = self._scaler()  # fp16: scaled losses (augengine.plugin_api.LossScaler); else plain steps
        opt_d.zero_grad(set_to_none=True)
        scaler.backward(loss_d)
        scaler.step(opt_d)

        # --- G step: maximise L_C - L_S (no weight gradients for D) ---
        self.D.requires_grad_(False)
        with self._autocast():
            s_g, c_g = D_train(self._aug(fake, rng))
            s_g, c_g = s_g.float(), c_g.float()
            if c.loss == "hinge":
                g_src = -s_g.mean()
            elif c.g_source_loss == "minimax":
                g_src = -F.binary_cross_entropy_with_logits(s_g, torch.zeros_like(s_g))
            else:
                g_src = F.binary_cross_entropy_with_logits(s_g, torch.ones_like(s_g))
            g_cls = F.cross_entropy(c_g, y_fake)
            loss_g = g_src + c.class_loss_weight * g_cls
        opt_g.zero_grad(set_to_none=True)
        scaler.backward(loss_g)
        scaler.step(opt_g)
        scaler.update()
        self.D.requires_grad_(True)

        return {"loss_d": loss_d, "loss_g": loss_g, "d_source": d_src, "d_class": d_cls, "g_source": g_src,
                "g_class": g_cls, "s_real": s_real, "c_real": c_real, "s_fake": s_fake}

    def _aug(self, x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return diff_augment(x, list(self.config.diffaugment), rng) if self.config.diffaugment else x

    @torch.no_grad()
    def _update_ema(self) -> None:
        d = self.config.ema_decay
        ema_p = list(self.G_ema.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in self.G.parameters()], 1.0 - d)
        for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
            be.copy_(b)

    def _fixed_noise(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        K, n = len(self.class_names), self.config.grid_per_class
        g = torch.Generator().manual_seed(seed + 3)
        z = torch.randn(K * n, self.config.latent_dim, generator=g)
        y = torch.arange(K).repeat_interleave(n)
        return z, y

    @torch.no_grad()
    def _save_grid(self, path: Path, z: torch.Tensor, y: torch.Tensor) -> None:
        from torchvision.utils import save_image

        net = self.G_ema if self.G_ema is not None else self.G
        was = net.training
        net.eval()
        with self._autocast():
            imgs = torch.cat([net(z[i:i + 64].to(self.device), y[i:i + 64].to(self.device)).float()
                              for i in range(0, len(z), 64)])
        net.train(was)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(imgs.cpu(), path, nrow=self.config.grid_per_class, normalize=True, value_range=(-1, 1), padding=1)

    def _scaler(self) -> LossScaler:
        """The loss scaler of this fit: a GradScaler under fp16 autocast, a pass-through otherwise."""
        sc = self.__dict__.get("_loss_scaler")
        if sc is None or sc.dtype != self.amp_dtype or sc.device != self.device:
            sc = self._loss_scaler = LossScaler(self.device, self.amp_dtype)
        return sc

    def _state(self, opt_g, opt_d, rng) -> dict[str, Any]:
        return {
            "scaler": self._scaler().state_dict() if opt_g is not None else None,
            "format": "augengine-acgan-1",
            "step": int(self.step),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_g": opt_g.state_dict() if opt_g is not None else None,
            "opt_d": opt_d.state_dict() if opt_d is not None else None,
            "rng_data": _rng_state_tensor(rng) if rng is not None else None,
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "class_names": list(self.class_names),
            "train_counts": dict(self.train_counts),
            "config": self.config.model_dump(mode="json"),
            "speed": self.speed.record() if self.__dict__.get("speed") is not None else None,
        }

    def _check_state(self, state: dict, path: Path) -> None:
        if state.get("format") != "augengine-acgan-1":
            raise DataError(f"{path}: not an acgan checkpoint (format {state.get('format')!r})")
        if list(state["class_names"]) != list(self.class_names):
            raise DataError(f"{path}: checkpoint classes {state['class_names']} differ from the training set's "
                            f"{self.class_names}")
        for key in ("image_size", "latent_dim", "g_channels", "d_channels", "class_embedding", "spectral_norm", "ema"):
            if state["config"].get(key) != getattr(self.config, key):
                raise ConfigError(f"{path}: cannot resume, config {key!r} was {state['config'].get(key)!r}, "
                                  f"now {getattr(self.config, key)!r}")

    @staticmethod
    def _ckpt_step(path: Path) -> int:
        try:
            return int(load_checkpoint(path)["step"])
        except Exception:  # noqa: BLE001 - only for the message
            return -1

    @staticmethod
    def _truncate_log(run_dir: Path, step: int) -> None:
        p = run_dir / LOSS_LOG
        if not p.exists():
            return
        keep = []
        for line in p.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (json.JSONDecodeError, KeyError):
                break  # a half-written last line from a killed run
        p.write_text("".join(x + "\n" for x in keep))

    def _write_record(self, run_dir: Path, seed: int, train) -> None:
        write_run_record(run_dir, self, class_names=list(self.class_names), train_counts=dict(self.train_counts),
                         seed=int(seed), step=int(self.step), image_size=self.image_size,
                         precision=str(self.amp_dtype or "fp32"), channels_last=self.use_channels_last,
                         speed=self.speed.record() if self.__dict__.get("speed") is not None else None)

    @staticmethod
    def _plot_losses(run_dir: Path) -> None:
        p = run_dir / LOSS_LOG
        if not p.exists():
            return
        rows = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
        if not rows:
            return
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        steps = [r["step"] for r in rows]
        for key in ("loss_d", "loss_g", "d_class", "g_class"):
            ax.plot(steps, [r[key] for r in rows], label=key, lw=1)
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.legend()
        ax.set_title("ACGAN losses")
        fig.tight_layout()
        fig.savefig(run_dir / "losses.png", dpi=100)

    # -- work (plan estimates) -------------------------------------------------------------
    @classmethod
    def work(cls, config, *, phase, n_images=0, class_counts=None, **context):
        """``fit``: ``iterations`` training steps (a D and a G step each); ``generate``: G forward
        passes of ``sample_batch_size``."""
        c = cls.Config.model_validate(dict(config))
        k = len(class_counts) if class_counts else 8
        key = {"plugin": cls.name, "image_size": c.image_size, "classes": k, "precision": c.precision,
               "channels_last": c.channels_last, "g": list(c.g_channels), "d": list(c.d_channels),
               "d_strides": list(c.d_strides), "diffaugment": list(c.diffaugment), "ema": c.ema,
               "embedding": c.class_embedding, "compile": c.compile}

        def build(b, device):
            g = cls(c.model_dump())
            g.device = torch.device(device)
            g._autocast = lambda: work_autocast(g.device, g.amp_dtype)  # meta has no autocast
            g.build_networks(k)
            return g

        def make_train(b, s, device):
            g = build(b, device)
            opt_g = torch.optim.Adam(g.G.parameters(), lr=c.lr, betas=tuple(c.betas))
            opt_d = torch.optim.Adam(g.D.parameters(), lr=c.lr, betas=tuple(c.betas))
            rng = torch.Generator().manual_seed(0)
            fmt = torch.channels_last if g.use_channels_last else torch.contiguous_format
            x = torch.randint(0, 256, (b, c.image_size, c.image_size, 3), dtype=torch.uint8)
            y = torch.randint(0, k, (b,)).to(g.device)
            z = torch.randn(b, c.latent_dim).to(g.device)
            G, D = (torch.compile(g.G), torch.compile(g.D)) if g.variant.compile and g.device.type != "meta" else (g.G, g.D)

            def step():
                xr = to_model(x, g.device).contiguous(memory_format=fmt)
                g.train_step(G, D, opt_g, opt_d, xr, y, z, y, rng)
                if g.G_ema is not None and g.device.type != "meta":
                    g._update_ema()

            return step

        def make_generate(b, s, device):
            g = build(b, device)
            g.G.eval()
            z = torch.randn(b, c.latent_dim).to(g.device)
            y = torch.randint(0, k, (b,)).to(g.device)

            @torch.inference_mode()
            def step():
                with g._autocast():
                    g.G(z, y)

            return step

        if phase == "fit":
            return [Work(f"acgan {c.image_size} px train step, batch {c.batch_size}", c.iterations,
                         {**key, "mode": "train"}, c.batch_size, c.image_size, make=make_train)]
        if phase == "generate":
            bs = c.sample_batch_size
            return [Work(f"acgan {c.image_size} px G forward, batch {bs}", math.ceil(n_images / bs),
                         {**key, "mode": "generate"}, bs, c.image_size, make=make_generate)]
        return []

    # -- sampling ------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, labels: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """One image per (label, seed): noise z_i ~ N(0, I) from a generator seeded with seed_i.

        Runs G in eval mode (EMA weights when present) in fixed batches of
        ``sample_batch_size`` (the last one padded), so image i is independent of the others.

        Shape:
            - labels, seeds: :math:`(K,)` int64.
            - output: :math:`(K, S, S, 3)` uint8.
        """
        if self.G is None:
            raise PluginError("generator 'acgan': not trained; call fit() or load a run first")
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        if labels.shape != seeds.shape:
            raise PluginError(f"generator 'acgan' sample(): {len(labels)} labels but {len(seeds)} seeds")
        K = len(self.class_names)
        if len(labels) and (labels.min() < 0 or labels.max() >= K):
            raise DataError(f"generator 'acgan' sample(): labels must lie in 0..{K - 1}, got {labels.min()}..{labels.max()}")
        net = self.G_ema if self.G_ema is not None else self.G
        net.eval()
        bs = self.config.sample_batch_size
        out = np.empty((len(labels), self.image_size, self.image_size, 3), dtype=np.uint8)
        rng = torch.Generator()  # reseeded per image: z_i depends on seed_i alone
        for s in range(0, len(labels), bs):
            e = min(len(labels), s + bs)
            z = torch.zeros(bs, self.config.latent_dim)
            y = torch.zeros(bs, dtype=torch.int64)
            y[: e - s] = torch.from_numpy(np.ascontiguousarray(labels[s:e]))
            for j, sd in enumerate(seeds[s:e].tolist()):  # one generator reseeded: 0.21 vs 0.36 ms per 64
                rng.manual_seed(sd)
                torch.randn(self.config.latent_dim, generator=rng, out=z[j])
            with self._autocast():
                x = net(z.to(self.device), y.to(self.device))
            out[s:e] = from_model(x[: e - s].float())
        return out

    # -- persistence ---------------------------------------------------------------------
    def save(self, run_dir) -> Path:
        """Write ``run_dir/checkpoint.pt`` (weights, no optimiser state unless mid-fit) and ``run.json``."""
        if self.G is None:
            raise PluginError("generator 'acgan': nothing to save; call fit() first")
        run_dir = Path(run_dir)
        ckpt = run_dir / CHECKPOINT
        if self.run_dir is not None and Path(self.run_dir).resolve() == run_dir.resolve() and ckpt.exists():
            state = load_checkpoint(ckpt)  # keep optimiser and RNG state of the finished fit
            if int(state["step"]) != self.step:
                state = self._state(None, None, None)
        else:
            state = self._state(None, None, None)
        save_checkpoint(state, ckpt)
        write_run_record(run_dir, self, class_names=list(self.class_names), train_counts=dict(self.train_counts),
                         step=int(self.step), image_size=self.image_size)
        self.run_dir = run_dir
        return run_dir

    @classmethod
    def load(cls, run_dir, device: str | None = None) -> "AcganGenerator":
        """Reopen a run written by :meth:`fit` or :meth:`save` (``weights_only=True``)."""
        run_dir = Path(run_dir)
        state = load_checkpoint(run_dir / CHECKPOINT)
        if state.get("format") != "augengine-acgan-1":
            raise DataError(f"{run_dir / CHECKPOINT}: not an acgan checkpoint (format {state.get('format')!r})")
        cfg = dict(state["config"])
        if device is not None:
            cfg["device"] = device
        self = cls(cfg)
        self.device = select_device(self.config.device)
        if state.get("speed"):
            speed = Resolution.from_record(state["speed"], where=f"{run_dir / CHECKPOINT} speed")
            if speed.variant.precision not in precision_options(self.device):
                speed.variant = Variant(**{**speed.variant.as_dict(), "precision": "fp32"})
            self.speed = speed
        self.class_names = list(state["class_names"])
        self.train_counts = {k: int(v) for k, v in state["train_counts"].items()}
        self.build_networks(len(self.class_names))
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None and state.get("G_ema") is not None:
            self.G_ema.load_state_dict(state["G_ema"])
        self.step = int(state["step"])
        self.G.eval()
        self.D.eval()
        if self.G_ema is not None:
            self.G_ema.eval()
        self.run_dir = run_dir
        return self
