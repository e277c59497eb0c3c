"""What every notebook's first cell needs: versions, device, fast mode, run sizes.

The notebooks stay short by asking this module for their set-up and sizes, so one switch
(`CH06_FAST=1`) makes all five run in seconds on fixture data, and the default picks
sizes that fit the data and the hardware at hand.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from utils.demo import DEMO, train_options
from utils.paths import REPO_ROOT, files_dir
from utils.runtime import describe, fast_mode, pick_device


@dataclass(frozen=True)
class RunSizes:
    """How big a notebook's run is: data, images, models, training budget."""

    synthetic_count: int  # built-in faces generated when no real data is present
    test_count: int  # held-out faces per domain
    image_size: int
    num_features: int  # generator width (the chapter: 64)
    num_residuals: int  # residual blocks (the chapter: 9)
    disc_features: tuple[int, ...]  # discriminator widths (the chapter: 64, 128, 256, 512)
    iterations: int  # training budget in pairs seen
    minutes: float | None = None  # optional wall-clock budget
    options: dict = field(default_factory=dict)  # extra TrainConfig fields (lr, identity, ...)


# The chapter's own sizes: what a reader with CelebA and a GPU runs.
CHAPTER = RunSizes(synthetic_count=0, test_count=64, image_size=256, num_features=64,
                   num_residuals=9, disc_features=(64, 128, 256, 512), iterations=48_472)

# Seconds on a laptop CPU: what CI runs every notebook with.
FAST = RunSizes(synthetic_count=40, test_count=4, image_size=32, num_features=8, num_residuals=1,
                disc_features=(8, 16, 32, 64), iterations=6)

# The built-in faces: exactly what `make demo` trains (see `utils/demo.py` for why each
# setting differs from the chapter's), so the notebooks and the demo share data and results.
_SIZE_FIELDS = ("image_size", "iterations", "num_features", "num_residuals", "disc_features")
BUILTIN = RunSizes(
    synthetic_count=DEMO.synthetic_count, test_count=DEMO.test_count, image_size=DEMO.image_size,
    num_features=DEMO.num_features, num_residuals=DEMO.num_residuals,
    disc_features=DEMO.disc_features, iterations=DEMO.iterations, minutes=14,
    # the notebooks teach the chapter's generator, whichever variant the demo uses
    options={**{k: v for k, v in train_options(DEMO).items() if k not in _SIZE_FIELDS},
             "generator": "chapter"})


def run_sizes(real_data: bool, device: torch.device) -> RunSizes:
    """Fast mode wins; real data on a GPU gets the chapter's sizes; else the built-in sizes."""
    if fast_mode():
        return FAST
    if real_data:
        return CHAPTER if device.type == "cuda" else replace(CHAPTER, image_size=128, iterations=2000)
    return BUILTIN


@dataclass(frozen=True)
class Session:
    device: torch.device
    fast: bool
    files: Path  # where data and checkpoints go; a separate `fast/` folder in fast mode
    root: Path

    def data_options(self) -> dict:
        """`ensure_data` keywords: how many built-in faces to make, how many to hold out."""
        sizes = FAST if self.fast else BUILTIN
        return {"synthetic_count": sizes.synthetic_count, "test_count": sizes.test_count}

    def data(self, kind: str = "celeba"):
        """(DataChoice, RunSizes): the split data (made if missing; cheap when present) and
        the sizes that fit it and this device."""
        from utils.prepare import ensure_data

        choice = ensure_data(kind, root=self.files, **self.data_options())
        return choice, run_sizes(choice.real, self.device)


def start(seed: int = 0) -> Session:
    """Print what runs where, seed everything, and return the session facts."""
    device = pick_device()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    fast = fast_mode()
    files = files_dir() / "fast" if fast else files_dir()  # fast runs never mix with real ones
    session = Session(device=device, fast=fast, files=files, root=REPO_ROOT)
    print(describe(device))
    print(f"Repository: {session.root}\nData and checkpoints: {session.files}")
    if session.fast:
        print("Fast mode (CH06_FAST=1): tiny built-in data, tiny models, a few iterations.")
    return session


def train_config(sizes: RunSizes, domain_a: Path, domain_b: Path, out: Path, **overrides):
    """A resumable `utils.train.TrainConfig` for these sizes: re-running a cell continues the run."""
    from utils.train import TrainConfig

    options = {**sizes.options, **overrides}
    preset = options.pop("preset", "chapter")
    return TrainConfig.from_preset(
        preset, domain_a=[domain_a], domain_b=[domain_b], out=out, image_size=sizes.image_size,
        iterations=sizes.iterations, minutes=sizes.minutes, num_features=sizes.num_features,
        num_residuals=sizes.num_residuals, disc_features=sizes.disc_features, resume=True,
        sample_every=min(500, max(1, sizes.iterations // 3)), **options)


def ensure_generators(session: Session, data, sizes: RunSizes):
    """(gen_A, gen_B) from `files/gen_black.pth` and `gen_blond.pth`; trained first if missing."""
    from utils.checkpoints import load_generator
    from utils.train import GEN_BLACK, GEN_BLOND, train

    paths = session.files / GEN_BLACK, session.files / GEN_BLOND
    if not all(p.is_file() for p in paths):
        print(f"No trained generators in {session.files}: training a pair now (notebook 03 does "
              "the same with more explanation).")
        train(train_config(sizes, data.domain_A, data.domain_B, session.files))
    return tuple(load_generator(p, session.device) for p in paths)
