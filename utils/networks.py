"""The four networks and two optimisers of a run, built from its `TrainConfig`.

One public place for them: the trainer (`utils.run_loop`), its CPU-thread probe
(`utils.run_loop.choose_cpu_threads`) and the fast GPU path's memory probe
(`utils.fast_gpu.measure_memory`) all build exactly the run's networks through it.
"""

from __future__ import annotations

import torch
from torch import nn

from utils import speed
from utils.ch06util import Discriminator, Generator, weights_init
from utils.settings import TrainConfig


def build_networks(config: TrainConfig, device: torch.device) -> dict[str, nn.Module]:
    """The chapter's four networks, initialised as in the paper."""
    nets: dict[str, nn.Module] = {}
    for name in ("gen_A", "gen_B"):
        nets[name] = Generator(3, num_features=config.num_features, num_residuals=config.num_residuals,
                               variant=config.generator, mask_start=config.mask_start)
    for name in ("disc_A", "disc_B"):
        nets[name] = Discriminator(3, features=config.discriminator_features())
    for net in nets.values():
        weights_init(net)
        net.to(device).train()
    return nets


def build_optimizers(config: TrainConfig, nets: dict[str, nn.Module]
                      ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """One Adam over both discriminators, one over both generators, as in the chapter
    (fused where the device has it: same update, measured faster; see utils/speed.py)."""
    return speed.make_optimizers(nets["disc_A"], nets["disc_B"], nets["gen_A"], nets["gen_B"],
                                 lr=config.lr, betas=config.betas)
