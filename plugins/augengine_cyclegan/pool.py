"""History buffer of generated images (Shrivastava et al. 2017), as CycleGAN uses it.

The discriminators are updated with a mix of the newest fakes and fakes from earlier
iterations: until the buffer holds ``size`` images every fake is stored and returned; after
that, with probability 1/2 a fake is swapped with a random stored one (the stored one is
returned), else it is returned as is. The buffer and its random generator live in tensors so
that a checkpoint (``weights_only=True``) restores them exactly.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["ImageHistory"]


class ImageHistory:
    """A fixed-size buffer of past fakes.

    Args:
        size: capacity (50 in the paper; 0 disables the buffer).
        seed: seed of the buffer's own random generator.
    """

    def __init__(self, size: int = 50, seed: int = 0):
        self.size = int(size)
        self.count = 0
        self.buffer: torch.Tensor | None = None
        self.gen = torch.Generator().manual_seed(int(seed))

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """Images for the discriminator step, one per fake.

        Shape:
            - fakes: :math:`(N, C, H, W)`; output: same shape, detached.
        """
        fakes = fakes.detach()
        if self.size <= 0:
            return fakes.clone()  # a copy, as from the buffer: the caller's fakes may be reused memory (CUDA graphs)
        if self.buffer is None:
            self.buffer = torch.empty((self.size, *fakes.shape[1:]), dtype=torch.float32, device=fakes.device)
        out = []
        for img in fakes:
            if self.count < self.size:
                self.buffer[self.count] = img
                self.count += 1
                out.append(img)
            elif torch.rand((), generator=self.gen).item() > 0.5:
                j = int(torch.randint(self.size, (), generator=self.gen))
                old = self.buffer[j].clone()
                self.buffer[j] = img
                out.append(old.to(img.dtype))
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "count": self.count,
            "buffer": self.buffer[: self.count].cpu() if self.buffer is not None else torch.empty(0),
            "rng": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])
        self.count = int(state["count"])
        stored = state["buffer"]
        if self.count:
            self.buffer = torch.empty((self.size, *stored.shape[1:]), dtype=torch.float32, device=device)
            self.buffer[: self.count] = stored.to(device)
        else:
            self.buffer = None
        self.gen.set_state(state["rng"])
