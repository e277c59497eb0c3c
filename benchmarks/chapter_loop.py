"""The chapter's training-loop body (listing 6.6), re-stated as the baseline for speed.py.

This is what a reader who types the chapter's code gets, so the benchmark compares the
project against it and not against a straw man:

* `torch.cuda.amp.autocast()` and `torch.cuda.amp.GradScaler()`: float16 autocast and an
  active scaler on CUDA; on a CPU both switch themselves off, so the chapter runs plain
  float32 there with a scaler that passes the loss through. The deprecated spellings are
  replaced by their `torch.amp` equivalents (same behaviour, no warnings).
* The generators' step back-propagates into the discriminators' weights too (nothing
  freezes them); those gradients are thrown away by the next `opt_disc.zero_grad()`.
* Contiguous (NCHW) tensors, default threads and backends, unfused Adam.
* The tqdm bar reads both losses with `.item()` every batch (a host sync on CUDA).

The `test()` call every 100 batches is left out here and in the project's loop alike.
"""

from __future__ import annotations

import torch
from torch import nn


def chapter_autocast(device_type: str):
    """`torch.cuda.amp.autocast()`: float16 on CUDA, a no-op on any other device."""
    return torch.autocast(device_type="cuda", dtype=torch.float16,
                          enabled=device_type == "cuda")


def chapter_scaler(device_type: str) -> torch.amp.GradScaler:
    """`torch.cuda.amp.GradScaler()`: active on CUDA, disabled (pass-through) elsewhere."""
    return torch.amp.GradScaler("cuda", enabled=device_type == "cuda")


def chapter_optimizers(disc_A: nn.Module, disc_B: nn.Module, gen_A: nn.Module,
                       gen_B: nn.Module, lr: float = 1e-5, betas=(0.5, 0.999)):
    """Listing 6.7's two plain Adam optimizers: both discriminators, both generators."""
    opt_disc = torch.optim.Adam(list(disc_A.parameters()) + list(disc_B.parameters()),
                                lr=lr, betas=betas)
    opt_gen = torch.optim.Adam(list(gen_A.parameters()) + list(gen_B.parameters()),
                               lr=lr, betas=betas)
    return opt_disc, opt_gen


def chapter_step(A, B, disc_A, disc_B, gen_A, gen_B, opt_disc, opt_gen, l1, mse,
                 d_scaler, g_scaler) -> tuple[float, float]:
    """One batch of the chapter's `train_epoch`; returns (D_loss, G_loss) as the bar shows them."""
    device_type = A.device.type
    # Train the discriminators
    with chapter_autocast(device_type):
        fake_A = gen_A(B)
        D_A_real = disc_A(A)
        D_A_fake = disc_A(fake_A.detach())
        D_A_real_loss = mse(D_A_real, torch.ones_like(D_A_real))
        D_A_fake_loss = mse(D_A_fake, torch.zeros_like(D_A_fake))
        D_A_loss = D_A_real_loss + D_A_fake_loss

        fake_B = gen_B(A)
        D_B_real = disc_B(B)
        D_B_fake = disc_B(fake_B.detach())
        D_B_real_loss = mse(D_B_real, torch.ones_like(D_B_real))
        D_B_fake_loss = mse(D_B_fake, torch.zeros_like(D_B_fake))
        D_B_loss = D_B_real_loss + D_B_fake_loss

        D_loss = (D_A_loss + D_B_loss) / 2

    opt_disc.zero_grad()
    d_scaler.scale(D_loss).backward()
    d_scaler.step(opt_disc)
    d_scaler.update()

    # Train the generators
    with chapter_autocast(device_type):
        D_A_fake = disc_A(fake_A)
        D_B_fake = disc_B(fake_B)
        loss_G_A = mse(D_A_fake, torch.ones_like(D_A_fake))
        loss_G_B = mse(D_B_fake, torch.ones_like(D_B_fake))

        cycle_B = gen_B(fake_A)
        cycle_A = gen_A(fake_B)
        cycle_B_loss = l1(B, cycle_B)
        cycle_A_loss = l1(A, cycle_A)

        G_loss = loss_G_A + loss_G_B + cycle_A_loss * 10 + cycle_B_loss * 10

    opt_gen.zero_grad()
    g_scaler.scale(G_loss).backward()
    g_scaler.step(opt_gen)
    g_scaler.update()

    return D_loss.item(), G_loss.item()
