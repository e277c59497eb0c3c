"""What each iteration trains on, and at what learning rate, reproducibly across resumes.

The order of pairs (`ResumableSampler`, `SeededPairs`), the paper's image pool (`ImagePool`),
the learning-rate schedule (`learning_rate`, `resolve_decay`) and the check that a resumed run
continues on the data it was trained on (`check_same_data`).
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from utils.ch06util import LoadData, read_rgb
from utils.cli import SettingError, UserError
from utils.datasets import DataLayoutError
from utils.settings import TrainConfig

PathLike = str | os.PathLike


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


def total_iterations(iterations: int | None, epochs: int | None, per_epoch: int) -> int | None:
    """The run's length when a budget fixes it (for the progress bar and the lr decay)."""
    totals = [t for t in (iterations, epochs * per_epoch if epochs is not None else None)
              if t is not None]
    return min(totals) if totals else None


def resolve_decay(config: TrainConfig, total: int | None) -> int | None:
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


class PairItems(torch.utils.data.Dataset):
    """What the DataLoader reads: `SeededPairs.load`, so the skipped files travel with the
    batch from any worker process to the loop that reports them."""

    def __init__(self, pairs: SeededPairs):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key):
        return self.pairs.load(key)


def _folders(roots: PathLike | Sequence[PathLike]) -> list[Path]:
    return [Path(roots)] if isinstance(roots, (str, os.PathLike)) else [Path(r) for r in roots]


def _same_images(a: Sequence[Path], b: Sequence[Path], sample: int = 3) -> bool:
    """Whether two image lists are one set under two folders: the same names, and the same bytes in
    the first few files (a copy of a folder; two sources that merely number their files alike differ)."""
    if not a or [p.name for p in a] != [p.name for p in b]:
        return False
    try:
        return all(x.read_bytes() == y.read_bytes() for x, y in zip(a[:sample], b[:sample], strict=True))
    except OSError:  # unreadable: the run's own checks name it
        return False


def check_two_domains(domain_a: PathLike | Sequence[PathLike], domain_b: PathLike | Sequence[PathLike],
                      images: tuple[Sequence[Path], Sequence[Path]] | None = None) -> None:
    """Refuse a run whose two domains are one: the same folder given for A and for B (or, when
    `images`, the two domains' image lists, are given, the same images in two folders).
    It would train black -> black without a word."""
    def real(path: Path) -> Path:
        try:
            return path.resolve()
        except OSError:  # a symbolic link loop: the folder check names it
            return path

    a = {real(p): p for p in _folders(domain_a)}
    b = {real(p): p for p in _folders(domain_b)}
    both = [str(a[p]) for p in a if p in b]
    same = images is not None and _same_images(*images)
    if both or same:
        what = (f"both name {', '.join(both)}" if both
                else f"hold the same {len(images[0]):,} images (a copy of one folder?)")
        raise SettingError(f"--domain-a and --domain-b (domain_a, domain_b) {what}: the run would learn to "
                           "turn a domain into itself. Give each domain its own folder (e.g. files/black "
                           "and files/blond).")


class ResumeMismatchError(UserError):
    """`--resume` on other data or with other settings than the run was trained with."""


def check_same_data(saved: dict[str, Any] | None, now: dict[str, Any], source: PathLike,
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
