"""Long CycleGAN runs a reader can leave alone: exact resume, budgets, logs, the paper's options.

One epoch of the chapter is 48,472 iterations: hours on a GPU, a day on a CPU, and Colab
disconnects long before that. So this module wraps the chapter's one-iteration function
(`utils.ch06util.train_step`) in a loop that

* checkpoints everything a run needs to continue *bit for bit* (networks, optimisers,
  scalers, data-order position, image pools, RNG states) every N iterations, at the end and
  on Ctrl-C, atomically and keeping the previous checkpoint until the new one is complete;
* stops on a budget of iterations (the run's total), epochs or minutes (this session's);
* writes `history.csv`, sample grids and the chapter's `gen_black.pth` / `gen_blond.pth`;
* offers the CycleGAN paper's options (identity loss, image pool, linear lr decay, random
  pairing), all off by default so the chapter's numbers stay the default;
* runs unchanged under `torchrun` with DistributedDataParallel;
* checks every setting before it starts, refuses to resume a run on other data (unless told
  `resume_anyway`), skips an image that cannot be read mid-run with a warning naming it, and
  prints after a few iterations how long the run takes on this machine.

CLI: `python -m utils.train --domain-a files/black --domain-b files/blond --out files/run`.
Python: `train(TrainConfig(domain_a=..., domain_b=..., out=...))`.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from utils import fast_gpu, speed
from utils.ch06util import (
    GENERATOR_VARIANTS,
    LOSS_KEYS,
    Discriminator,
    Generator,
    LoadData,
    _autocast,
    check_generator_variant,
    default_autocast_dtype,
    make_grad_scaler,
    make_transform,
    read_rgb,
    train_step,
    weights_init,
)
from utils.checkpoints import CheckpointError, atomic_save, load_state_dict_checked, safe_load
from utils.cli import SettingError, UserError, command
from utils.datasets import DataLayoutError
from utils.runtime import pick_device

PathLike = str | os.PathLike

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
GEN_BLACK = "gen_black.pth"  # gen_A: makes domain A (black hair) from B
GEN_BLOND = "gen_blond.pth"  # gen_B: makes domain B (blond hair) from A
HISTORY = "history.csv"
SAMPLES = "samples"
HISTORY_COLUMNS = ("iteration", "epoch", *LOSS_KEYS, "lr", "seconds")
CHECKPOINT_FORMAT = 1

# Stop reasons, in the order distributed ranks agree on them (the highest code wins).
STOP_REASONS = ("iterations", "epochs", "minutes", "callback", "interrupted")

PRESETS: dict[str, dict[str, Any]] = {
    "chapter": {},  # the dataclass defaults are the chapter's
    "paper": {"lr": 2e-4, "lambda_identity": 5.0, "pool_size": 50, "decay_from": "half"},
}
# "demo": the settings of `make demo`, read from `utils.demo.DEMO` so the CLI, the demo and the
# notebooks build that run from one place (`utils.demo.train_options`).
PRESET_NAMES = (*PRESETS, "demo")


def preset_options(preset: str) -> dict[str, Any]:
    """The TrainConfig fields a preset sets ("chapter", "paper" or "demo")."""
    if preset == "demo":
        from utils.demo import DEMO, train_options

        return train_options(DEMO)
    if preset not in PRESETS:
        raise SettingError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}.")
    return PRESETS[preset]


# ------------------------------------------------------------------------- configuration
@dataclass
class TrainConfig:
    """Everything a run needs; the defaults are the chapter's (listings 6.6, 6.7).

    domain_a, domain_b: folders of domain A (black hair) and B (blond); one or a list.
    out: folder for checkpoint.pt, gen_black.pth, gen_blond.pth, history.csv, samples/.
    image_size: side of the square training images (chapter: 256).
    batch_size: images per iteration and per process (chapter: 1).
    iterations: the run's TOTAL iterations, so the same call with resume=True finishes it.
    epochs: the run's total epochs; with iterations, whichever comes first.
    minutes: wall-clock budget of this session only (e.g. under a Colab time limit).
    resume: continue from the newest checkpoint in `out` (starts fresh if there is none).
    resume_anyway: resume even when the domain folders differ from the ones the checkpoint
        was trained on (other folders, A and B swapped); without it such a resume is refused.
    lr, betas: Adam's settings for both optimisers (chapter: 1e-5, (0.5, 0.999)).
    lambda_cycle: weight of the cycle-consistency L1 loss (chapter and paper: 10).
    lambda_identity: weight of the identity loss L1(G(x), x); 0 = off (paper: 5).
    pool_size: history of generated images shown to the discriminators; 0 = off (paper: 50).
    decay_from: iteration from which the lr falls linearly to 0 at the end, "half" = the
        second half of the run, a float below 1 = that share of the run (0.6: the last 40%);
        None = constant lr (chapter). Needs iterations or epochs.
    random_pairing: draw B's image at random per item (paper's unaligned data) instead of
        the chapter's `B[i % len(B)]`; reproducible from the seed.
    num_features, num_residuals: generator size (chapter: 64, 9); see `disc_features`.
    generator: "chapter" (the book's) or a variant beyond the chapter that sees colour
        (`ch06util.GENERATOR_VARIANTS`); saved weights record it, so they load as that variant.
    disc_features: discriminator widths; None = (f, 2f, 4f, 8f) with f = num_features,
        which is the chapter's (64, 128, 256, 512) at the default size.
    checkpoint_every: iterations between checkpoints (also written at the end and on Ctrl-C).
    sample_every: iterations between sample grids in out/samples/; 0 = never.
    log_every: iterations between reads of the losses (each read syncs a GPU).
    seed: one number that makes a run repeatable on the same machine.
    device: "cuda", "cpu", "mps", ...; None = `utils.runtime.pick_device()`.
    workers: DataLoader worker processes; None = `utils.speed.recommended_workers` (0 on a CPU).
    mixed_precision: autocast where it pays (`ch06util.default_autocast_dtype`: bf16 or fp16
        on CUDA, float32 on most CPUs); False = float32 everywhere, e.g. to compare a GPU run
        with a CPU one or to rule precision out when losses turn NaN.
    fast_gpu: on a CUDA GPU, compiled networks (CUDA graphs), channels-last and, at batch 1,
        a batch size picked from the GPU's memory with a scaled lr (`utils.fast_gpu`); the
        chapter's model and losses either way. A no-op with a note elsewhere.
    """

    domain_a: PathLike | Sequence[PathLike]
    domain_b: PathLike | Sequence[PathLike]
    out: PathLike
    image_size: int = 256
    batch_size: int = 1
    iterations: int | None = None
    epochs: int | None = None
    minutes: float | None = None
    resume: bool = False
    resume_anyway: bool = False
    lr: float = 1e-5
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.0
    pool_size: int = 0
    decay_from: int | float | str | None = None
    random_pairing: bool = False
    num_features: int = 64
    num_residuals: int = 9
    generator: str = "chapter"  # extra code – beyond the chapter: ch06util.GENERATOR_VARIANTS
    disc_features: tuple[int, ...] | None = None
    checkpoint_every: int = 2000
    sample_every: int = 500
    log_every: int = 20
    seed: int = 0
    device: str | None = None
    workers: int | None = None
    mixed_precision: bool = True
    fast_gpu: bool = False  # extra code – utils/fast_gpu.py

    def __post_init__(self) -> None:
        _check_settings(self)

    @classmethod
    def from_preset(cls, preset: str = "chapter", **overrides: Any) -> TrainConfig:
        """A config from a preset ("chapter", "paper" or "demo"); explicit keyword arguments win."""
        return cls(**{**preset_options(preset), **overrides})

    def discriminator_features(self) -> tuple[int, ...]:
        f = self.num_features
        return tuple(self.disc_features) if self.disc_features else (f, 2 * f, 4 * f, 8 * f)


def _patch_side(image_size: int, disc_features: Sequence[int]) -> int:
    """Side of the discriminator's output map for `image_size` (0 when too small).

    The chapter's `Discriminator`: a 4x4 stride-2 convolution, a Block per further width
    (stride 1 for the last, else 2), a 4x4 stride-1 convolution; each pads 1 by reflection,
    which needs an input of at least 2 pixels.
    """
    side = image_size
    strides = [2] + [1 if f == disc_features[-1] else 2 for f in disc_features[1:]] + [1]
    for stride in strides:
        if side < 2:
            return 0
        side = (side + 2 - 4) // stride + 1
    return side


_NO_FLAG = frozenset({"log_every", "lambda_cycle", "betas", "disc_features"})


def _check_settings(config: TrainConfig) -> None:
    """Every numeric setting of a run, checked in one place, with the allowed range.

    (Extra code – not in the book.) A nonsense value (`--num-residuals -1`, `--iterations 0`)
    would otherwise train something else than asked, or fail an hour later. The CLI flag of
    a field is its name with dashes (log_every, lambda_cycle, betas, disc_features have none).
    """

    def bad(name: str, allowed: str, value: Any) -> SettingError:
        flag = "" if name in _NO_FLAG else f" (--{name.replace('_', '-')})"
        return SettingError(f"{name}{flag} must be {allowed}, got {value!r}.")

    try:
        check_generator_variant(config.generator)
    except ValueError as error:
        raise SettingError(f"generator (--generator): {error}") from None

    def integer(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    def number(value: Any) -> bool:
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
            and math.isfinite(value)

    # whole numbers, and the smallest value each may take
    at_least = {"batch_size": 1, "checkpoint_every": 1, "log_every": 1, "num_features": 1,
                # 0 blocks would leave an encoder-decoder without the generator's transforming
                # part (the chapter's Generator is a ResNet generator): at least one block.
                "num_residuals": 1, "pool_size": 0, "sample_every": 0, "seed": 0}
    for name, low in at_least.items():
        value = getattr(config, name)
        if not integer(value) or value < low:
            raise bad(name, f"a whole number of at least {low}", value)
    for name in ("iterations", "epochs"):
        value = getattr(config, name)
        if value is not None and (not integer(value) or value < 1):
            raise bad(name, "a whole number of at least 1 (or not given)", value)
    if config.workers is not None and (not integer(config.workers) or config.workers < 0):
        raise bad("workers", "a whole number of at least 0 (or not given)", config.workers)
    if config.minutes is not None and (not number(config.minutes) or config.minutes <= 0):
        raise bad("minutes", "a number of minutes above 0 (or not given: no time limit)", config.minutes)
    if not number(config.lr) or config.lr <= 0:
        raise bad("lr", "a learning rate above 0 (chapter 1e-5, paper 2e-4)", config.lr)
    for name in ("lambda_cycle", "lambda_identity"):
        value = getattr(config, name)
        if not number(value) or value < 0:
            raise bad(name, "a weight of at least 0 (0 = off)", value)
    betas = tuple(config.betas)
    if len(betas) != 2 or not all(number(b) and 0 <= b < 1 for b in betas):
        raise bad("betas", "two numbers in [0, 1), e.g. (0.5, 0.999)", config.betas)
    disc = config.discriminator_features()
    if not disc or not all(integer(f) and f >= 1 for f in disc):
        raise bad("disc_features", "one or more widths of at least 1, e.g. (64, 128, 256, 512)",
                  config.disc_features)
    smallest = next((n for n in range(4, 8193, 4) if _patch_side(n, disc) >= 1), None)
    if smallest is None:
        raise bad("disc_features", "a list short enough for images up to 8192 px", config.disc_features)
    size = config.image_size
    if not integer(size) or size % 4 or size < smallest:
        raise bad("image_size", f"a multiple of 4 (the generator halves it twice) and at least "
                  f"{smallest} (the discriminator's smallest input)", size)
    decay = config.decay_from
    if isinstance(decay, str):
        if decay != "half":
            raise bad("decay_from", 'an iteration, "half", a share of the run below 1, or None', decay)
    elif decay is not None:
        if integer(decay):
            if decay < 0:
                raise bad("decay_from", "an iteration of at least 0", decay)
        elif not number(decay) or not 0 < decay < 1:
            raise bad("decay_from", 'an iteration, "half", a share of the run in (0, 1), or None', decay)


@dataclass
class TrainEvent:
    """What `callback` receives every `log_every` iterations and at every sample grid."""

    iteration: int
    epoch: int
    losses: dict[str, float]
    lr: float
    grid: torch.Tensor | None = None  # (3, H, W) in [0, 1] on the CPU, when a sample was made
    sample_path: Path | None = None


@dataclass
class TrainResult:
    """What a run wrote and where it stopped. `history` has one row per iteration."""

    reason: str  # one of STOP_REASONS
    iteration: int
    epoch: int
    history: pd.DataFrame
    paths: dict[str, Path]  # checkpoint, gen_black, gen_blond, history, samples
    gen_A: nn.Module
    gen_B: nn.Module
    disc_A: nn.Module
    disc_B: nn.Module
    skipped_images: dict[str, int] = field(default_factory=dict)  # unreadable file -> times skipped


# ------------------------------------------------------------------------- paper options
class ImagePool:
    """The paper's history of generated images (Shrivastava et al. 2017).

    Until `size` images are stored each new fake is stored and returned. Then, per image,
    with probability 0.5 an older stored fake is returned and replaced by the new one, else
    the new one is returned. So the discriminators also see what the generators did
    earlier, which damps oscillation. `size=0` returns the input unchanged. The draws come
    from the pool's own generator, which is saved with it so a resumed run draws the same.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        chosen = []
        for image in images.split(1):
            if len(self.images) < self.size:
                self.images.append(image)
                chosen.append(image)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                k = int(torch.randint(self.size, (), generator=self.generator))
                chosen.append(self.images[k].to(image))
                self.images[k] = image
            else:
                chosen.append(image)
        return torch.cat(chosen)

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "images": [image.cpu() for image in self.images],
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])
        self.images = [image.to(device) for image in state["images"]]
        self.generator.set_state(state["generator"])


def learning_rate(base: float, iteration: int, total: int | None, decay_from: int | None) -> float:
    """The lr of 0-based `iteration`: `base`, then linear to 0 from `decay_from` to `total`."""
    if decay_from is None or total is None or iteration < decay_from or total <= decay_from:
        return base
    return base * max(0.0, (total - iteration) / (total - decay_from))


# ---------------------------------------------------------------------- data: order + aug
class ResumableSampler(Sampler):
    """Shuffled items drawn from (seed, epoch) alone, sharded by rank, startable mid-epoch.

    Each item is `(a_index, b_index, augmentation_seed)`, so the pairing (the chapter's
    modulo or random) and the random flip are fixed by the position in the epoch, not by
    whatever RNG a DataLoader worker happens to hold: a resumed run sees exactly the
    images, in the same order, with the same flips. With `world_size` > 1 the epoch's
    permutation is padded to a multiple of it and rank r takes every world_size-th item,
    as `DistributedSampler` does.
    """

    def __init__(self, len_a: int, len_b: int, *, seed: int = 0, random_pairing: bool = False,
                 rank: int = 0, world_size: int = 1):
        self.len_a, self.len_b = len_a, len_b
        self.size = max(len_a, len_b)
        self.seed, self.random_pairing = seed, random_pairing
        self.rank, self.world_size = rank, world_size
        self.per_rank = math.ceil(self.size / world_size)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Choose the epoch (its permutation) and how many of this rank's items to skip."""
        self.epoch, self.start = epoch, start

    def epoch_items(self, epoch: int) -> np.ndarray:
        """This rank's `(a, b, seed)` rows of one epoch, shape (per_rank, 3)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.size)
        b = rng.integers(self.len_b, size=self.size) if self.random_pairing else order % self.len_b
        aug = rng.integers(2**31, size=self.size)
        items = np.stack([order % self.len_a, b, aug], axis=1)
        pad = self.per_rank * self.world_size - self.size
        items = np.concatenate([items, np.resize(items, (pad, 3))]) if pad else items
        return items[self.rank::self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        return iter(map(tuple, self.epoch_items(self.epoch)[self.start:].tolist()))

    def __len__(self) -> int:
        return self.per_rank - self.start


class SeededPairs(LoadData):
    """The chapter's `LoadData`, indexed by the sampler's `(a, b, seed)` items.

    Reseeding the albumentations pipeline per item makes the flip a function of the item,
    identical in the main process and in any worker, before and after a resume.

    (Extra code – not in the book.) An image that cannot be read mid-run (damaged, deleted,
    half-synced) would stop a run and cost the work since the last checkpoint. Here it is
    skipped instead: the next readable image of the same domain takes its place (so the
    run stays a function of the item, and a resume sees the same), and `load` says which
    files it skipped so the loop can warn and count them. An empty domain is refused at once.
    """

    @staticmethod
    def _collect(roots, domain):
        try:
            return LoadData._collect(roots, domain)
        except ValueError as error:  # the chapter's class: "Domain A has no images in ..."
            raise DataLayoutError(str(error)) from None

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return super().__getitem__(key)
        A_img, B_img, _ = self.load(key)
        return A_img, B_img

    def load(self, key: tuple[int, int, int]) -> tuple[Any, Any, str]:
        """`(A, B, skipped)`: the transformed pair and the unreadable files skipped for it,
        one per line ("" when none)."""
        a, b, seed = key
        skipped: list[str] = []
        A_img = self._read(self.A_images, a, skipped)
        B_img = self._read(self.B_images, b, skipped)
        if self.transform:
            self.transform.set_random_seed(seed)
            augmentations = self.transform(image=B_img, image0=A_img)
            B_img, A_img = augmentations["image"], augmentations["image0"]
        return A_img, B_img, "\n".join(skipped)

    @staticmethod
    def _read(images: list[Path], index: int, skipped: list[str]):
        for k in range(len(images)):
            path = images[(index + k) % len(images)]
            try:
                return read_rgb(path)
            except RuntimeError:  # read_rgb's "Cannot decode image ..." (damaged or gone)
                skipped.append(str(path))
        raise DataLayoutError(f"None of the {len(images)} images of {Path(images[0]).parent} can be "
                              "read. Check the folder (an unfinished copy or download?) and split again.")

    def record(self) -> dict[str, Any]:
        """What the run trains on, cheaply: each domain's folders, image count and a hash of
        the file names (not of the pixels), saved in every checkpoint for `--resume` to check."""
        def side(roots: Sequence[Path], images: list[Path]) -> dict[str, Any]:
            names = "\n".join(sorted(p.name for p in images)).encode()
            return {"folders": [str(Path(r).resolve()) for r in roots], "count": len(images),
                    "names": hashlib.sha256(names).hexdigest()}

        return {"A": side(self.root_A, self.A_images), "B": side(self.root_B, self.B_images)}


class _Items(torch.utils.data.Dataset):
    """What the DataLoader reads: `SeededPairs.load`, so the skipped files travel with the
    batch from any worker process to the loop that reports them."""

    def __init__(self, pairs: SeededPairs):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key):
        return self.pairs.load(key)


class ResumeMismatchError(UserError):
    """`--resume` on other data than the run was trained on."""


def _check_same_data(saved: dict[str, Any] | None, now: dict[str, Any], source: PathLike,
                    anyway: bool = False) -> None:
    """Refuse to resume a run on other domain folders (or A and B swapped); warn when a
    domain's images changed. A folder moved elsewhere with the same file names is the same run.

    `saved` is the record in the checkpoint (None for checkpoints written before it existed:
    nothing to check). With `anyway` the refusal becomes a warning.
    """
    if not saved:
        return

    def same(mine: dict[str, Any], theirs: dict[str, Any]) -> bool:
        return mine["folders"] == theirs["folders"] or mine["names"] == theirs["names"]

    if not (same(now["A"], saved["A"]) and same(now["B"], saved["B"])):
        swapped = same(now["A"], saved["B"]) and same(now["B"], saved["A"])
        message = (f"{source} was trained on A = {', '.join(saved['A']['folders'])} and B = "
                   f"{', '.join(saved['B']['folders'])}; this run gives A = {', '.join(now['A']['folders'])} "
                   f"and B = {', '.join(now['B']['folders'])}"
                   + (" (A and B swapped)" if swapped else " (other images)")
                   + ". Give the run's own folders, or start a new run in another --out folder; "
                   "--resume-anyway (resume_anyway=True) continues on these anyway.")
        if not anyway:
            raise ResumeMismatchError(message)
        warnings.warn(message, stacklevel=3)
        return
    for domain in ("A", "B"):
        was, is_ = saved[domain], now[domain]
        if was["count"] != is_["count"]:
            warnings.warn(f"Domain {domain} has {is_['count']:,} images now and had {was['count']:,} when "
                          f"{source} was written: training continues on the new set, so the run is "
                          "no longer the one a single session would have made.", stacklevel=3)
        elif was["names"] != is_["names"]:
            warnings.warn(f"The image files of domain {domain} changed since {source} was written "
                          "(same count, other names): training continues on the new set.", stacklevel=3)


# -------------------------------------------------------------------- building the parts
def _build_networks(config: TrainConfig, device: torch.device) -> dict[str, nn.Module]:
    """The chapter's four networks, initialised as in the paper."""
    nets: dict[str, nn.Module] = {}
    for name in ("gen_A", "gen_B"):
        nets[name] = Generator(3, num_features=config.num_features, num_residuals=config.num_residuals,
                               variant=config.generator)
    for name in ("disc_A", "disc_B"):
        nets[name] = Discriminator(3, features=config.discriminator_features())
    for net in nets.values():
        weights_init(net)
        net.to(device).train()
    return nets


def _build_optimizers(config: TrainConfig, nets: dict[str, nn.Module]
                      ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """One Adam over both discriminators, one over both generators, as in the chapter
    (fused where the device has it: same update, measured faster; see utils/speed.py)."""
    return speed.make_optimizers(nets["disc_A"], nets["disc_B"], nets["gen_A"], nets["gen_B"],
                                 lr=config.lr, betas=config.betas)


@dataclass
class _Dist:
    """Where this process stands in a `torchrun` job (world_size 1 when run plainly)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def _setup_distributed(preference: str | None) -> tuple[_Dist, torch.device]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _Dist(), pick_device(preference)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(preference)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), local_rank, dist.get_world_size(), owns), device


def _wrap_distributed(nets: dict[str, nn.Module], ctx: _Dist, device: torch.device
                      ) -> dict[str, nn.Module]:
    """DDP around each network. `train_step` freezes the discriminators during the
    generators' step: their DDP reducers then simply see no gradients in that backward,
    and the generators' outputs of the discriminator step feed the generators' backward,
    so every parameter still gets exactly one gradient per backward that uses it."""
    if not ctx.enabled:
        return nets
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return {name: DDP(net, device_ids=ids) for name, net in nets.items()}


# ------------------------------------------------------------------------------ RNG state
def _rng_state() -> dict[str, Any]:
    """Every global RNG as tensors and plain values, loadable with weights_only=True."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"].tolist()), p["gauss_next"]))


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# ----------------------------------------------------------------------------- checkpoints
def load_latest_checkpoint(out: PathLike) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint in `out` that loads, or None when there is none.

    A damaged `checkpoint.pt` (a save cut short by something harsher than an exception,
    a sync tool's partial copy) is reported, renamed to `checkpoint.damaged.pt` and the
    previous one is used. If no file loads, a `CheckpointError` names them all.
    """
    out = Path(out)
    candidates = [p for p in (out / CHECKPOINT, out / PREVIOUS_CHECKPOINT) if p.is_file()]
    errors = []
    for path in candidates:
        try:
            state = safe_load(path)
            if not (isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT):
                raise CheckpointError(f"{path} is not a training checkpoint of utils.train.")
        except CheckpointError as error:
            errors.append(str(error))
            continue
        if errors:
            damaged = out / "checkpoint.damaged.pt"
            os.replace(candidates[0], damaged)
            warnings.warn(f"{candidates[0]} cannot be loaded ({errors[0]}); it was renamed to "
                          f"{damaged.name} and training resumes from {path}.", stacklevel=2)
        return state, path
    if errors:
        raise CheckpointError(
            "No checkpoint in " + str(out) + " can be loaded:\n  " + "\n  ".join(errors)
            + "\nStart afresh in another --out folder (or without --resume after moving these)."
        )
    return None


def _save_checkpoint(state: dict[str, Any], out: Path) -> Path:
    """Rotate `checkpoint.pt` to `checkpoint.prev.pt`, then write the new one atomically.

    At every moment one complete checkpoint exists: the old one is only renamed, and the
    new one appears under its name only once fully written (`atomic_save`).
    """
    path = out / CHECKPOINT
    if path.is_file():
        os.replace(path, out / PREVIOUS_CHECKPOINT)
    return atomic_save(state, path)


# --------------------------------------------------------------------------------- history
class _History:
    """`history.csv`, one row per iteration, appended across resumes without duplicates."""

    def __init__(self, path: Path, *, keep_through: int | None, write: bool):
        self.path, self.write = path, write
        frame = pd.DataFrame(columns=list(HISTORY_COLUMNS))
        if keep_through is not None and write and path.is_file():  # rank 0 alone keeps it
            old = pd.read_csv(path)
            frame = old[old["iteration"] <= keep_through]
        self.frames = [frame]
        if write:
            tmp = path.with_name(f".{path.name}.tmp")
            frame.to_csv(tmp, index=False)
            os.replace(tmp, path)

    def append(self, rows: pd.DataFrame) -> None:
        self.frames.append(rows)
        if self.write:
            rows.to_csv(self.path, mode="a", header=False, index=False)

    def frame(self) -> pd.DataFrame:
        frames = [f for f in self.frames if len(f)]
        if not frames:
            return self.frames[0].reset_index(drop=True)
        return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------- interruptions
class _DeferredInterrupt:
    """Turn the first Ctrl-C into a flag checked between iterations.

    A KeyboardInterrupt in the middle of `train_step` could leave the discriminators
    stepped and the generators not, which no checkpoint can describe. A second Ctrl-C
    raises at once (the last periodic checkpoint is then kept). Only the main thread can
    install signal handlers; elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nInterrupt received: finishing this iteration, then saving a checkpoint "
              "(press Ctrl-C again to stop at once).", file=sys.stderr)

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ----------------------------------------------------------------------------- the loop
@torch.no_grad()
def _sample_grid(A, B, fake_A, fake_B, gen_A, gen_B, autocast_dtype) -> torch.Tensor:
    """Rows: real A, fake B, cycled A / real B, fake A, cycled B (first item of the batch)."""
    with _autocast(A.device.type, autocast_dtype):
        cycle_A = gen_A(fake_B[:1])
        cycle_B = gen_B(fake_A[:1])
    images = torch.cat([A[:1], fake_B[:1], cycle_A, B[:1], fake_A[:1], cycle_B]).float()
    return make_grid(images * 0.5 + 0.5, nrow=3, padding=2).clamp(0, 1).cpu()


def _total_iterations(iterations: int | None, epochs: int | None, per_epoch: int) -> int | None:
    """The run's length when a budget fixes it (for the progress bar and the lr decay)."""
    totals = [t for t in (iterations, epochs * per_epoch if epochs is not None else None)
              if t is not None]
    return min(totals) if totals else None


def _resolve_decay(config: TrainConfig, total: int | None) -> int | None:
    if config.decay_from is None:
        return None
    if total is None:
        raise SettingError("A learning-rate decay (decay_from / the paper preset) needs a known "
                           "length: give iterations or epochs, not only minutes.")
    if config.decay_from == "half":
        return total // 2
    if isinstance(config.decay_from, float):  # a share of the run (checked to lie in (0, 1))
        return int(config.decay_from * total)
    return int(config.decay_from)


def train(config: TrainConfig, *, progress: bool = True,
          callback: Callable[[TrainEvent], bool | None] | None = None,
          clock: Callable[[], float] = time.monotonic) -> TrainResult:
    """Train (or continue) a CycleGAN run as `config` says; see the module docstring.

    `callback(event)` runs on rank 0 every `log_every` iterations and at every sample
    grid; returning True stops the run (reason "callback") after a checkpoint. `clock`
    measures the `minutes` budget and the speed estimate (tests pass a fake one). With no
    budget at all the run trains one epoch, as the chapter does.
    """
    ctx, device = _setup_distributed(config.device)
    try:
        return _train(config, ctx, device, progress, callback, clock)
    finally:
        if ctx.owns_group:
            dist.destroy_process_group()


def _train(config, ctx: _Dist, device, progress, callback, clock) -> TrainResult:
    """The run in the order a reader follows it; each step is one method of `_Run`."""
    run = _Run(config, ctx, device, progress, callback, clock)  # set-up: data, networks, optimisers
    run.resume()  # or start fresh; refuses to overwrite a run or to continue one on other data
    return run.loop()  # iterations, logs and samples, checkpoints; then finish


ETA_STEPS = 10  # iterations timed (after the first, which warms up) for the speed estimate ...
ETA_SECONDS = 10.0  # ... or fewer, when they take this long


def _duration(seconds: float) -> str:
    """'about 40 s', 'about 23 min', 'about 2.5 h': a rounded wall time for a person."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


class _Run:
    """One session of a training run, in named steps (see `_train`).

    Set-up (`__init__`) builds everything in a fixed order, which fixes the random draws;
    `resume` loads the newest checkpoint (or starts fresh); `loop` runs `one_iteration`,
    then `log_and_sample`, `decide_stop` and, every `checkpoint_every`, `checkpoint`; `finish`
    saves the last state. Everything a checkpoint must hold lives on this object.
    """

    # ----------------------------------------------------------------------- set-up
    def __init__(self, config: TrainConfig, ctx: _Dist, device: torch.device, progress: bool,
                 callback: Callable[[TrainEvent], bool | None] | None, clock: Callable[[], float]):
        self.config, self.ctx, self.device = config, ctx, device
        self.progress, self.callback, self.clock = progress, callback, clock
        self.out = out = Path(config.out)
        self.paths = {"checkpoint": out / CHECKPOINT, "gen_black": out / GEN_BLACK,
                      "gen_blond": out / GEN_BLOND, "history": out / HISTORY, "samples": out / SAMPLES}
        if ctx.main:
            self.paths["samples"].mkdir(parents=True, exist_ok=True)
        _seed_everything(config.seed)
        self.config = config = fast_gpu.settle(config, device, log=print if ctx.main else lambda _: None)

        self.dataset = SeededPairs(config.domain_a, config.domain_b, make_transform(config.image_size))
        self.data_record = self.dataset.record()  # what the run trains on: fixed once the lists are made
        self.sampler = ResumableSampler(self.dataset.A_len, self.dataset.B_len, seed=config.seed,
                                        random_pairing=config.random_pairing, rank=ctx.rank,
                                        world_size=ctx.world_size)
        # Its own generator: each `iter(loader)` draws a worker base seed, which must not
        # move the global torch RNG (a resumed run would draw it once more).
        self.loader = DataLoader(_Items(self.dataset), batch_size=config.batch_size, sampler=self.sampler,
                                 generator=torch.Generator().manual_seed(config.seed),
                                 **speed.loader_options(device, config.workers))
        per_epoch = math.ceil(self.sampler.per_rank / config.batch_size)
        no_budget = config.iterations is None and config.epochs is None and config.minutes is None
        self.epochs_budget = 1 if no_budget else config.epochs  # the chapter trains one epoch
        self.total = _total_iterations(config.iterations, self.epochs_budget, per_epoch)
        self.decay_from = _resolve_decay(config, self.total)

        speed.tune_backends(device)
        self.nets = _build_networks(config, device)
        self.opt_disc, self.opt_gen = _build_optimizers(config, self.nets)
        self.autocast_dtype = default_autocast_dtype(device) if config.mixed_precision else None
        self.d_scaler = make_grad_scaler(device, self.autocast_dtype)
        self.g_scaler = make_grad_scaler(device, self.autocast_dtype)
        seeds = np.random.SeedSequence([config.seed, ctx.rank]).generate_state(2)
        self.pool_A, self.pool_B = (ImagePool(config.pool_size, seed=int(s)) for s in seeds)
        self.pos = {"iteration": 0, "epoch": 0, "position": 0, "seconds": 0.0}
        self.l1, self.mse = nn.L1Loss(), nn.MSELoss()
        self.pending: list[tuple[int, int, float, float, torch.Tensor]] = []  # losses not yet read
        self.last_losses: dict[str, float] = {}
        self.skipped: dict[str, int] = {}  # unreadable image -> times skipped this session

    # ----------------------------------------------------------------------- resume
    def resume(self) -> None:
        """Continue from the newest checkpoint (`resume=True`), or start fresh; never silently
        overwrite a run, and never continue one on other data."""
        config, ctx, out = self.config, self.ctx, self.out
        found = load_latest_checkpoint(out) if config.resume else None
        if found is not None:
            state, source = found
            _check_same_data(state.get("data"), self.data_record, source, config.resume_anyway)
            _restore(state, source, config, self.nets, self.opt_disc, self.opt_gen, self.d_scaler,
                     self.g_scaler, self.pool_A, self.pool_B, self.device, ctx)
            self.pos = {k: state[k] for k in self.pos}
            if ctx.main:
                print(f"Resuming from {source} at iteration {self.pos['iteration']} "
                      f"(epoch {self.pos['epoch']}).")
        elif config.resume:
            if ctx.main:
                print(f"No checkpoint in {out}: starting fresh.")
        elif (out / CHECKPOINT).is_file() or (out / PREVIOUS_CHECKPOINT).is_file():
            raise FileExistsError(
                f"{out} already holds a training checkpoint. Pass --resume (resume=True) to continue "
                "it, or choose another --out folder to start a new run."
            )
        self.history = _History(self.paths["history"],
                                keep_through=self.pos["iteration"] if found else None, write=ctx.main)
        self.run_nets = _wrap_distributed(self.nets, ctx, self.device)
        self.step_fn = train_step  # extra code – the fast GPU path: compiled networks, eager fallback
        if config.fast_gpu and self.device.type == "cuda":
            left = None if self.total is None else self.total - self.pos["iteration"]
            self.step_fn = fast_gpu.FastStep(train_step, self.device, remaining=left,
                                             log=print if ctx.main else lambda _: None)

    # ------------------------------------------------------------------ the loop
    def loop(self) -> TrainResult:
        """Iterate until a budget, the callback or Ctrl-C stops the run, then `finish`."""
        config, pos = self.config, self.pos
        self.started = self.clock()
        self.seconds_before, self.first_iteration = pos["seconds"], pos["iteration"]
        self.wish: str | None = None  # a stop this rank wants; under DDP agreed at log boundaries
        self.in_step = self.in_checkpoint = False
        self.saved_at = pos["iteration"]  # the iteration of the newest checkpoint on disk
        self.estimated = False  # the duration is printed once
        reason = self.reached_budget()
        self.bar = tqdm(total=self.total, initial=pos["iteration"], unit="it", dynamic_ncols=True,
                        disable=not (self.progress and self.ctx.main))
        with _DeferredInterrupt() as interrupt:
            try:
                while reason is None:
                    self.sampler.set_epoch(pos["epoch"], pos["position"])
                    for A, B, skipped in self.loader:
                        self.note_skipped(skipped)
                        step = self.one_iteration(A, B)
                        self.log_and_sample(step)
                        reason = self.decide_stop(interrupt.requested)
                        if reason is not None:
                            break
                        if pos["iteration"] % config.checkpoint_every == 0:
                            if self.ctx.main:
                                self.flush()
                            self.checkpoint()
            except KeyboardInterrupt:
                reason = "interrupted"
                if self.in_step:  # the networks may be half-updated: keep the last periodic checkpoint
                    return self.stop_mid_iteration(reason)
            except Exception:
                self.save_before_error()
                raise
        return self.finish(reason)

    def one_iteration(self, A: torch.Tensor, B: torch.Tensor) -> dict[str, torch.Tensor]:
        """The chapter's training step (listing 6.7) at this iteration's lr; moves the position.
        Returns the step's losses and images, with the batch on the device as "A" and "B"."""
        config, pos = self.config, self.pos
        self.lr = learning_rate(config.lr, pos["iteration"], self.total, self.decay_from)
        for group in (*self.opt_disc.param_groups, *self.opt_gen.param_groups):
            group["lr"] = self.lr
        A = A.to(self.device, non_blocking=True)
        B = B.to(self.device, non_blocking=True)
        self.in_step = True
        nets = self.run_nets
        step = self.step_fn(A, B, nets["disc_A"], nets["disc_B"], nets["gen_A"], nets["gen_B"],
                            self.opt_disc, self.opt_gen, self.l1, self.mse, self.d_scaler, self.g_scaler,
                            autocast_dtype=self.autocast_dtype, lambda_cycle=config.lambda_cycle,
                            lambda_identity=config.lambda_identity,
                            pool_A=self.pool_A if config.pool_size else None,
                            pool_B=self.pool_B if config.pool_size else None)
        epoch = pos["epoch"]
        pos["iteration"] += 1
        pos["position"] += A.shape[0]
        if pos["position"] >= self.sampler.per_rank:
            pos["epoch"] += 1
            pos["position"] = 0
        pos["seconds"] = self.seconds_before + self.clock() - self.started
        self.in_step = False
        if self.ctx.main:
            self.pending.append((pos["iteration"], epoch, self.lr, pos["seconds"],
                                 torch.stack([step[k] for k in LOSS_KEYS])))
        self.bar.update(1)
        self.estimate_duration()
        step["A"], step["B"] = A, B
        return step

    def estimate_duration(self) -> None:
        """Once, early: how long the whole run takes on this machine, from the iterations after
        the first (which warms up): after `ETA_STEPS` of them, or `ETA_SECONDS`, if sooner."""
        done = self.pos["iteration"] - self.first_iteration
        if done == 1:
            self.seconds_after_first = self.pos["seconds"]
        if done < 2 or self.estimated or not (self.progress and self.ctx.main and self.total):
            return
        left = self.total - self.first_iteration
        timed = self.pos["seconds"] - self.seconds_after_first
        if done - 1 < min(ETA_STEPS, max(1, left // 10)) and timed < ETA_SECONDS:
            return
        self.estimated = True
        per_iteration = timed / (done - 1)
        which = f"the remaining {left:,}" if self.first_iteration else f"the run's {left:,}"
        self.bar.write(f"{per_iteration:.2f} s per iteration: {which} iterations take "
                       f"{_duration(per_iteration * left)} on this machine.")

    def note_skipped(self, skipped: Sequence[str]) -> None:
        """Warn (once per file) about unreadable images the data loader skipped, and count them."""
        for line in skipped:
            for path in filter(None, line.split("\n")):
                if path not in self.skipped:
                    self.bar.write(f"warning: skipped {path}: it cannot be read (damaged or gone); the "
                                   "next image of its folder took its place. Replace or remove it.",
                                   file=sys.stderr)
                self.skipped[path] = self.skipped.get(path, 0) + 1

    def flush(self) -> dict[str, float]:
        """Read the pending losses (one device sync) and append them to history.csv."""
        if not self.pending:
            return self.last_losses
        losses = torch.stack([row[4] for row in self.pending]).cpu().numpy()  # one sync per flush
        rows = pd.DataFrame(np.array([row[:4] for row in self.pending]),
                            columns=["iteration", "epoch", "lr", "seconds"])
        rows[list(LOSS_KEYS)] = losses
        rows = rows.astype({"iteration": "int64", "epoch": "int64"})[list(HISTORY_COLUMNS)]
        self.history.append(rows)
        self.pending.clear()
        self.last_losses.update({k: float(v) for k, v in zip(LOSS_KEYS, losses[-1], strict=True)})
        return self.last_losses

    def log_and_sample(self, step: dict[str, torch.Tensor]) -> None:
        """Every `log_every` iterations (and at a stop): read the losses, show them, call the
        callback; every `sample_every`: save a grid of real, translated and cycled faces."""
        config, pos = self.config, self.pos
        self.stop = self.reached_budget()  # the same on every rank
        if config.minutes is not None and self.clock() - self.started >= 60 * config.minutes:
            self.wish = self.wish or "minutes"
        sample = config.sample_every and pos["iteration"] % config.sample_every == 0
        if not (self.ctx.main and (sample or pos["iteration"] % config.log_every == 0 or self.stop)):
            return
        losses = self.flush()
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
        event = TrainEvent(pos["iteration"], pos["epoch"], dict(losses), self.lr)
        if sample:
            event.grid = _sample_grid(step["A"], step["B"], step["fake_A"], step["fake_B"],
                                      self.nets["gen_A"], self.nets["gen_B"], self.autocast_dtype)
            event.sample_path = self.paths["samples"] / f"{pos['iteration']:08d}.png"
            save_image(event.grid, event.sample_path)
        if self.callback is not None and self.callback(event):
            self.wish = self.wish or "callback"

    def decide_stop(self, interrupted: bool) -> str | None:
        """Why the run stops now, or None. Under DDP every rank agrees (at log boundaries)."""
        if interrupted:
            self.wish = "interrupted"
        if not self.ctx.enabled:
            return self.stop or self.wish
        if self.stop or self.pos["iteration"] % self.config.log_every == 0:
            # one collective at log boundaries, not every iteration
            return _agree(self.stop or self.wish, self.ctx, self.device)
        return None

    def reached_budget(self) -> str | None:
        if self.config.iterations is not None and self.pos["iteration"] >= self.config.iterations:
            return "iterations"
        if self.epochs_budget is not None and self.pos["epoch"] >= self.epochs_budget:
            return "epochs"
        return None

    # ------------------------------------------------------------------ checkpoint
    def checkpoint(self) -> None:
        """Everything the run needs to continue bit for bit, plus the chapter's two files."""
        ctx, nets = self.ctx, self.nets
        self.in_checkpoint = True
        pools = _gather({"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict()}, ctx)
        if ctx.main:
            _save_checkpoint({
                "format": CHECKPOINT_FORMAT, **self.pos,
                "config": _shape_record(self.config, ctx),
                "data": self.data_record,  # checked by the next --resume
                **{name: net.state_dict() for name, net in nets.items()},
                "opt_disc": self.opt_disc.state_dict(), "opt_gen": self.opt_gen.state_dict(),
                "d_scaler": self.d_scaler.state_dict(), "g_scaler": self.g_scaler.state_dict(),
                "pools": pools,  # one entry per rank: each rank's fakes differ
                "rng": _rng_state(),
            }, self.out)
            atomic_save(nets["gen_A"].state_dict(), self.paths["gen_black"])
            atomic_save(nets["gen_B"].state_dict(), self.paths["gen_blond"])
        ctx.barrier()
        self.in_checkpoint = False
        self.saved_at = self.pos["iteration"]

    def save_before_error(self) -> None:
        """An error between two iterations (data the skips could not absorb, a callback's bug)
        must not cost the iterations since the last checkpoint: save them, then let the error
        through. Not inside a step (the networks may be half-updated), not when saving was what
        failed, and not under DDP (the other ranks would wait for this one)."""
        if self.in_step or self.in_checkpoint or self.ctx.enabled or self.pos["iteration"] <= self.saved_at:
            return
        try:
            self.bar.close()
            self.flush()
            self.checkpoint()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            return
        print(f"Saved a checkpoint at iteration {self.pos['iteration']:,} in {self.out} before stopping on "
              "the error below; fix it, then run again with --resume.", file=sys.stderr)

    # ---------------------------------------------------------------------- finish
    def finish(self, reason: str) -> TrainResult:
        """Write the last losses and a final checkpoint; say where the run stopped."""
        self.bar.close()
        if self.ctx.main:
            self.flush()
        if self.pos["iteration"] > self.first_iteration:
            self.checkpoint()
        if self.ctx.main and self.progress:
            print(f"Stopped at iteration {self.pos['iteration']:,} ({reason}); wrote {self.out}.")
        self.report_skipped()
        return self.result(reason)

    def stop_mid_iteration(self, reason: str) -> TrainResult:
        """A second Ctrl-C inside a step: the networks may be half-updated, so no checkpoint."""
        self.bar.close()
        if self.ctx.main:
            self.flush()
            print(f"Stopped in the middle of iteration {self.pos['iteration'] + 1}: "
                  f"the last checkpoint in {self.out} is kept.", file=sys.stderr)
        self.report_skipped()
        return self.result(reason)

    def report_skipped(self) -> None:
        if self.skipped:
            names = ", ".join(sorted(self.skipped)[:5]) + (" ..." if len(self.skipped) > 5 else "")
            print(f"warning: {sum(self.skipped.values())} reads of {len(self.skipped)} unreadable "
                  f"image(s) were skipped: {names}. Replace or remove them.", file=sys.stderr)

    def result(self, reason: str) -> TrainResult:
        return TrainResult(reason=reason, iteration=self.pos["iteration"], epoch=self.pos["epoch"],
                           history=self.history.frame(), paths=self.paths, **self.nets,
                           skipped_images=dict(self.skipped))


def _agree(stop: str | None, ctx: _Dist, device: torch.device) -> str | None:
    """All ranks stop together, for the most urgent reason any of them has."""
    if not ctx.enabled:
        return stop
    code = torch.tensor(STOP_REASONS.index(stop) + 1 if stop else 0, device=device)
    dist.all_reduce(code, op=dist.ReduceOp.MAX)
    return STOP_REASONS[int(code) - 1] if int(code) else None


def _gather(obj: Any, ctx: _Dist) -> list[Any]:
    """`obj` of every rank, in rank order, on rank 0 (others get an empty list)."""
    if not ctx.enabled:
        return [obj]
    gathered: list[Any] | None = [None] * ctx.world_size if ctx.main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered or []


def _shape_record(config: TrainConfig, ctx: _Dist) -> dict[str, Any]:
    return {"num_features": config.num_features, "num_residuals": config.num_residuals,
            "generator": config.generator,
            "disc_features": list(config.discriminator_features()), "image_size": config.image_size,
            "batch_size": config.batch_size, "seed": config.seed,
            "random_pairing": config.random_pairing, "world_size": ctx.world_size}


def _restore(state, source, config, nets, opt_disc, opt_gen, d_scaler, g_scaler, pool_A, pool_B,
             device, ctx) -> None:
    for name, net in nets.items():
        load_state_dict_checked(net, state[name], f"{source} [{name}]")
    opt_disc.load_state_dict(state["opt_disc"])
    opt_gen.load_state_dict(state["opt_gen"])
    for opt in (opt_disc, opt_gen):  # a --fast-gpu checkpoint may be channels-last: match the layout
        speed.match_optimizer_layout(opt)
    for scaler, key in ((d_scaler, "d_scaler"), (g_scaler, "g_scaler")):
        if scaler.is_enabled() and state[key]:
            scaler.load_state_dict(state[key])
    pools = state["pools"]
    mine = pools[ctx.rank] if len(pools) == ctx.world_size else pools[0]
    pool_A.load_state_dict(mine["pool_A"], device)
    pool_B.load_state_dict(mine["pool_B"], device)
    _set_rng_state(state["rng"])
    saved, now = state["config"], _shape_record(config, ctx)
    changed = [f"{k} {saved[k]} -> {now[k]}" for k in ("image_size", "batch_size", "seed",
                                                         "random_pairing", "world_size")
               if saved.get(k) != now[k]]
    if changed and ctx.main:
        warnings.warn(f"Resuming {source} with other settings ({', '.join(changed)}): training "
                      "continues, but not as the original run would have.", stacklevel=3)


# ----------------------------------------------------------------------------- plotting
# ----------------------------------------------------------------------------------- CLI
def _decay_arg(text: str) -> int | float | str:
    if text == "half":
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)  # a share of the run, checked by TrainConfig
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an iteration, "half" or a share like 0.6, '
                                         f'got {text!r}') from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m utils.train",
        description="Train the chapter's CycleGAN; resumable, with budgets, logs and the paper's options.",
    )
    p.add_argument("--domain-a", nargs="+", required=True, metavar="DIR",
                   help="folder(s) of domain A (black hair; gen_A / gen_black.pth makes it)")
    p.add_argument("--domain-b", nargs="+", required=True, metavar="DIR",
                   help="folder(s) of domain B (blond hair; gen_B / gen_blond.pth makes it)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="where checkpoint.pt, gen_black.pth, gen_blond.pth, history.csv, samples/ go")
    p.add_argument("--preset", choices=PRESET_NAMES, default="chapter",
                   help="chapter: lr 1e-5, options off; paper: lr 2e-4, identity 5, pool 50, "
                        "decay over the second half; demo: the sizes and settings of `make demo` "
                        "(explicit flags override)")
    p.add_argument("--image-size", type=int, help="training image side (default 256)")
    p.add_argument("--iterations", type=int, help="the run's TOTAL iterations (same number on --resume)")
    p.add_argument("--epochs", type=int, help="the run's total epochs (default 1 when no budget given)")
    p.add_argument("--minutes", type=float, help="stop this session after M minutes (then --resume)")
    p.add_argument("--batch-size", type=int, help="images per iteration and process (default 1)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --out (fresh start if none)")
    p.add_argument("--resume-anyway", action="store_true", default=None,
                   help="--resume even if the domain folders differ from the run's (other folders, "
                        "A and B swapped); refused without it")
    p.add_argument("--lr", type=float, help="Adam learning rate (chapter 1e-5, paper 2e-4)")
    p.add_argument("--lambda-identity", type=float, help="identity loss weight, 0 = off (paper 5)")
    p.add_argument("--pool-size", type=int, help="image history pool size, 0 = off (paper 50)")
    p.add_argument("--decay-from", type=_decay_arg, metavar="ITER|half|SHARE",
                   help="linear lr decay to 0 from this iteration (or share of the run, e.g. 0.6) "
                        "to the end (needs a known length)")
    p.add_argument("--random-pairing", action="store_true", default=None,
                   help="pair each A with a random B (paper) instead of B[i %% len(B)] (chapter)")
    p.add_argument("--num-features", type=int, help="generator width (default 64; 8x for the discriminator)")
    p.add_argument("--num-residuals", type=int, help="generator residual blocks (default 9)")
    p.add_argument("--generator", choices=GENERATOR_VARIANTS,
                   help="the chapter's generator (default) or a variant beyond the chapter that sees colour")
    p.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints (default 2000)")
    p.add_argument("--sample-every", type=int, help="iterations between sample grids; 0 = never (500)")
    p.add_argument("--seed", type=int, help="one number that makes the run repeatable (default 0)")
    p.add_argument("--device", help="cuda, cpu, mps, ... (default: CUDA, then MPS, then CPU)")
    p.add_argument("--workers", type=int, help="DataLoader workers (default min(4, CPUs) on CUDA, 0 on CPU)")
    p.add_argument("--no-mixed-precision", dest="mixed_precision", action="store_false", default=None,
                   help="float32 everywhere (default: bf16/fp16 autocast on CUDA)")
    p.add_argument("--fast-gpu", action="store_true", default=None,
                   help="CUDA: compiled networks (CUDA graphs), channels-last, a picked batch size "
                        "with a scaled lr (printed); the chapter's model and losses (utils/fast_gpu.py)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A `TrainConfig` from parsed CLI arguments: the preset, then every flag given."""
    skip = {"preset", "quiet"}
    overrides = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    if overrides.get("resume_anyway"):
        overrides["resume"] = True
    return TrainConfig.from_preset(args.preset, **overrides)


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Reader mistakes (a bad setting, an empty or unwritable folder, a full disk, a resume on
    other data) end in one line and exit code 2 (`utils.cli`); bugs keep their traceback."""
    args = build_parser().parse_args(argv)
    result = train(config_from_args(args), progress=not args.quiet)
    return 130 if result.reason == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
