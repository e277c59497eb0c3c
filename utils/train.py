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
* runs unchanged under `torchrun` with DistributedDataParallel.

CLI: `python -m utils.train --domain-a files/black --domain-b files/blond --out files/run`.
Python: `train(TrainConfig(domain_a=..., domain_b=..., out=...))`.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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

from utils import speed
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
    lr, betas: Adam's settings for both optimisers (chapter: 1e-5, (0.5, 0.999)).
    lambda_cycle: weight of the cycle-consistency L1 loss (chapter and paper: 10).
    lambda_identity: weight of the identity loss L1(G(x), x); 0 = off (paper: 5).
    pool_size: history of generated images shown to the discriminators; 0 = off (paper: 50).
    decay_from: iteration from which the lr falls linearly to 0 at the end, "half" = the
        second half of the run; None = constant lr (chapter). Needs iterations or epochs.
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
    lr: float = 1e-5
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.0
    pool_size: int = 0
    decay_from: int | str | None = None
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

    def __post_init__(self) -> None:
        for name in ("batch_size", "image_size", "checkpoint_every", "log_every", "num_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("iterations", "epochs", "minutes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}.")
        if self.pool_size < 0 or self.sample_every < 0 or self.lambda_identity < 0:
            raise ValueError("pool_size, sample_every and lambda_identity cannot be negative.")
        check_generator_variant(self.generator)
        if isinstance(self.decay_from, str) and self.decay_from != "half":
            raise ValueError(f'decay_from must be an iteration, "half" or None, not {self.decay_from!r}.')

    @classmethod
    def from_preset(cls, preset: str = "chapter", **overrides: Any) -> TrainConfig:
        """A config from a preset ("chapter" or "paper"); explicit keyword arguments win."""
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[preset], **overrides})

    def discriminator_features(self) -> tuple[int, ...]:
        f = self.num_features
        return tuple(self.disc_features) if self.disc_features else (f, 2 * f, 4 * f, 8 * f)


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
    """

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return super().__getitem__(key)
        a, b, seed = key
        A_img = read_rgb(self.A_images[a % self.A_len])
        B_img = read_rgb(self.B_images[b % self.B_len])
        if self.transform:
            self.transform.set_random_seed(seed)
            augmentations = self.transform(image=B_img, image0=A_img)
            B_img, A_img = augmentations["image"], augmentations["image0"]
        return A_img, B_img


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
        raise ValueError("A learning-rate decay (decay_from / the paper preset) needs a known "
                         "length: give iterations or epochs, not only minutes.")
    return total // 2 if config.decay_from == "half" else int(config.decay_from)


def train(config: TrainConfig, *, progress: bool = True,
          callback: Callable[[TrainEvent], bool | None] | None = None,
          clock: Callable[[], float] = time.monotonic) -> TrainResult:
    """Train (or continue) a CycleGAN run as `config` says; see the module docstring.

    `callback(event)` runs on rank 0 every `log_every` iterations and at every sample
    grid; returning True stops the run (reason "callback") after a checkpoint. `clock`
    measures the `minutes` budget (tests pass a fake one). With no budget at all the run
    trains one epoch, as the chapter does.
    """
    ctx, device = _setup_distributed(config.device)
    try:
        return _train(config, ctx, device, progress, callback, clock)
    finally:
        if ctx.owns_group:
            dist.destroy_process_group()


def _train(config, ctx: _Dist, device, progress, callback, clock) -> TrainResult:
    out = Path(config.out)
    paths = {"checkpoint": out / CHECKPOINT, "gen_black": out / GEN_BLACK,
             "gen_blond": out / GEN_BLOND, "history": out / HISTORY, "samples": out / SAMPLES}
    if ctx.main:
        paths["samples"].mkdir(parents=True, exist_ok=True)
    _seed_everything(config.seed)

    dataset = SeededPairs(config.domain_a, config.domain_b, make_transform(config.image_size))
    sampler = ResumableSampler(dataset.A_len, dataset.B_len, seed=config.seed,
                               random_pairing=config.random_pairing, rank=ctx.rank,
                               world_size=ctx.world_size)
    # Its own generator: each `iter(loader)` draws a worker base seed, which must not
    # move the global torch RNG (a resumed run would draw it once more).
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler,
                        generator=torch.Generator().manual_seed(config.seed),
                        **speed.loader_options(device, config.workers))
    per_epoch = math.ceil(sampler.per_rank / config.batch_size)
    no_budget = config.iterations is None and config.epochs is None and config.minutes is None
    epochs_budget = 1 if no_budget else config.epochs  # the chapter trains one epoch
    total = _total_iterations(config.iterations, epochs_budget, per_epoch)
    decay_from = _resolve_decay(config, total)

    speed.tune_backends(device)
    nets = _build_networks(config, device)
    opt_disc, opt_gen = _build_optimizers(config, nets)
    autocast_dtype = default_autocast_dtype(device) if config.mixed_precision else None
    d_scaler = make_grad_scaler(device, autocast_dtype)
    g_scaler = make_grad_scaler(device, autocast_dtype)
    seeds = np.random.SeedSequence([config.seed, ctx.rank]).generate_state(2)
    pool_A, pool_B = (ImagePool(config.pool_size, seed=int(s)) for s in seeds)
    pos = {"iteration": 0, "epoch": 0, "position": 0, "seconds": 0.0}

    found = load_latest_checkpoint(out) if config.resume else None
    if found is not None:
        state, source = found
        _restore(state, source, config, nets, opt_disc, opt_gen, d_scaler, g_scaler, pool_A, pool_B,
                 device, ctx)
        pos = {k: state[k] for k in pos}
        if ctx.main:
            print(f"Resuming from {source} at iteration {pos['iteration']} (epoch {pos['epoch']}).")
    elif config.resume:
        if ctx.main:
            print(f"No checkpoint in {out}: starting fresh.")
    elif (out / CHECKPOINT).is_file() or (out / PREVIOUS_CHECKPOINT).is_file():
        raise FileExistsError(
            f"{out} already holds a training checkpoint. Pass --resume (resume=True) to continue "
            "it, or choose another --out folder to start a new run."
        )
    history = _History(paths["history"], keep_through=pos["iteration"] if found else None,
                       write=ctx.main)

    run = _wrap_distributed(nets, ctx, device)

    def checkpoint() -> None:
        pools = _gather({"pool_A": pool_A.state_dict(), "pool_B": pool_B.state_dict()}, ctx)
        if ctx.main:
            _save_checkpoint({
                "format": CHECKPOINT_FORMAT, **pos,
                "config": _shape_record(config, ctx),
                **{name: net.state_dict() for name, net in nets.items()},
                "opt_disc": opt_disc.state_dict(), "opt_gen": opt_gen.state_dict(),
                "d_scaler": d_scaler.state_dict(), "g_scaler": g_scaler.state_dict(),
                "pools": pools,  # one entry per rank: each rank's fakes differ
                "rng": _rng_state(),
            }, out)
            atomic_save(nets["gen_A"].state_dict(), paths["gen_black"])
            atomic_save(nets["gen_B"].state_dict(), paths["gen_blond"])
        ctx.barrier()

    def reached_budget() -> str | None:
        if config.iterations is not None and pos["iteration"] >= config.iterations:
            return "iterations"
        if epochs_budget is not None and pos["epoch"] >= epochs_budget:
            return "epochs"
        return None

    started = clock()
    seconds_before, first_iteration = pos["seconds"], pos["iteration"]
    l1, mse = nn.L1Loss(), nn.MSELoss()
    wish: str | None = None  # a stop this rank wants; under DDP agreed at log boundaries
    pending: list[tuple[int, int, float, float, torch.Tensor]] = []
    last_losses: dict[str, float] = {}

    def flush() -> dict[str, float]:
        if not pending:
            return last_losses
        losses = torch.stack([row[4] for row in pending]).cpu().numpy()  # one sync per flush
        rows = pd.DataFrame(np.array([row[:4] for row in pending]),
                            columns=["iteration", "epoch", "lr", "seconds"])
        rows[list(LOSS_KEYS)] = losses
        rows = rows.astype({"iteration": "int64", "epoch": "int64"})[list(HISTORY_COLUMNS)]
        history.append(rows)
        pending.clear()
        last_losses.update({k: float(v) for k, v in zip(LOSS_KEYS, losses[-1], strict=True)})
        return last_losses

    reason = reached_budget()
    in_step = False
    bar = tqdm(total=total, initial=pos["iteration"], disable=not (progress and ctx.main),
               unit="it", dynamic_ncols=True)
    with _DeferredInterrupt() as interrupt:
        try:
            while reason is None:
                sampler.set_epoch(pos["epoch"], pos["position"])
                for A, B in loader:
                    lr = learning_rate(config.lr, pos["iteration"], total, decay_from)
                    for group in (*opt_disc.param_groups, *opt_gen.param_groups):
                        group["lr"] = lr
                    A = A.to(device, non_blocking=True)
                    B = B.to(device, non_blocking=True)
                    in_step = True
                    step = train_step(A, B, run["disc_A"], run["disc_B"], run["gen_A"], run["gen_B"],
                                      opt_disc, opt_gen, l1, mse, d_scaler, g_scaler,
                                      autocast_dtype=autocast_dtype, lambda_cycle=config.lambda_cycle,
                                      lambda_identity=config.lambda_identity,
                                      pool_A=pool_A if config.pool_size else None,
                                      pool_B=pool_B if config.pool_size else None)
                    epoch = pos["epoch"]
                    pos["iteration"] += 1
                    pos["position"] += A.shape[0]
                    if pos["position"] >= sampler.per_rank:
                        pos["epoch"] += 1
                        pos["position"] = 0
                    pos["seconds"] = seconds_before + clock() - started
                    in_step = False
                    if ctx.main:
                        pending.append((pos["iteration"], epoch, lr, pos["seconds"],
                                        torch.stack([step[k] for k in LOSS_KEYS])))
                    bar.update(1)

                    stop = reached_budget()  # the same on every rank
                    if config.minutes is not None and clock() - started >= 60 * config.minutes:
                        wish = wish or "minutes"
                    sample = config.sample_every and pos["iteration"] % config.sample_every == 0
                    if ctx.main and (sample or pos["iteration"] % config.log_every == 0 or stop):
                        losses = flush()
                        bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
                        event = TrainEvent(pos["iteration"], pos["epoch"], dict(losses), lr)
                        if sample:
                            event.grid = _sample_grid(A, B, step["fake_A"], step["fake_B"],
                                                      nets["gen_A"], nets["gen_B"], autocast_dtype)
                            event.sample_path = paths["samples"] / f"{pos['iteration']:08d}.png"
                            save_image(event.grid, event.sample_path)
                        if callback is not None and callback(event):
                            wish = wish or "callback"
                    if interrupt.requested:
                        wish = "interrupted"
                    if not ctx.enabled:
                        reason = stop or wish
                    elif stop or pos["iteration"] % config.log_every == 0:
                        reason = _agree(stop or wish, ctx, device)  # one collective, not every iteration
                    if reason is not None:
                        break
                    if pos["iteration"] % config.checkpoint_every == 0:
                        if ctx.main:
                            flush()
                        checkpoint()
        except KeyboardInterrupt:
            reason = "interrupted"
            if in_step:  # the networks may be half-updated: keep the last periodic checkpoint
                bar.close()
                if ctx.main:
                    flush()
                    print(f"Stopped in the middle of iteration {pos['iteration'] + 1}: "
                          f"the last checkpoint in {out} is kept.", file=sys.stderr)
                return _result(reason, pos, history, paths, nets)
    bar.close()
    if ctx.main:
        flush()
    if pos["iteration"] > first_iteration:
        checkpoint()
    if ctx.main and progress:
        print(f"Stopped at iteration {pos['iteration']} ({reason}); wrote {out}.")
    return _result(reason, pos, history, paths, nets)


def _result(reason, pos, history, paths, nets) -> TrainResult:
    return TrainResult(reason=reason, iteration=pos["iteration"], epoch=pos["epoch"],
                       history=history.frame(), paths=paths, **nets)


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
def _decay_arg(text: str) -> int | str:
    if text == "half":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an iteration or "half", got {text!r}') from None


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
    p.add_argument("--preset", choices=sorted(PRESETS), default="chapter",
                   help="chapter: lr 1e-5, options off; paper: lr 2e-4, identity 5, pool 50, "
                        "decay over the second half (explicit flags override)")
    p.add_argument("--image-size", type=int, help="training image side (default 256)")
    p.add_argument("--iterations", type=int, help="the run's TOTAL iterations (same number on --resume)")
    p.add_argument("--epochs", type=int, help="the run's total epochs (default 1 when no budget given)")
    p.add_argument("--minutes", type=float, help="stop this session after M minutes (then --resume)")
    p.add_argument("--batch-size", type=int, help="images per iteration and process (default 1)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --out (fresh start if none)")
    p.add_argument("--lr", type=float, help="Adam learning rate (chapter 1e-5, paper 2e-4)")
    p.add_argument("--lambda-identity", type=float, help="identity loss weight, 0 = off (paper 5)")
    p.add_argument("--pool-size", type=int, help="image history pool size, 0 = off (paper 50)")
    p.add_argument("--decay-from", type=_decay_arg, metavar="ITER|half",
                   help="linear lr decay to 0 from this iteration to the end (needs a known length)")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A `TrainConfig` from parsed CLI arguments: the preset, then every flag given."""
    skip = {"preset", "quiet"}
    overrides = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    return TrainConfig.from_preset(args.preset, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = train(config_from_args(args), progress=not args.quiet)
    except (CheckpointError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 130 if result.reason == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
