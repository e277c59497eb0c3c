"""Scores without ground truth: a domain classifier, and FID/KID from the reader's Inception weights.

(Extra code – not in the book.) `evaluate_without_truth` for real CelebA, glasses or any two
folders; nothing is ever downloaded. What each number means: `utils.evaluate`'s docstring.
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.cli import SettingError
from utils.inference import load_images
from utils.truth_metrics import (
    EvaluationInputError,
    MissingPackageError,
    check_limit,
    check_size,
    chunks,
    evaluating,
    kind_names,
    mean_of,
    source_paths,
    to_unit,
)

PathLike = str | os.PathLike

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
TORCH_FIDELITY_HELP = (
    "FID/KID need the optional package torch-fidelity: pip install \"torch-fidelity>=0.3,<0.4\". "
    "(Avoid 0.4.0: its wheel also installs a top-level `tests` package, which hides this "
    "repository's tests/ folder and breaks `pytest tests`.)"
)


# ----------------------------------------------------------- without ground truth
class DomainClassifier(nn.Module):
    """A few strided convolutions and one logit: > 0 means domain B.

    Small on purpose: it only has to tell two hair colours (or glasses) apart at 64 px, and
    it must train in seconds on a laptop CPU.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def train_domain_classifier(images_A: torch.Tensor, images_B: torch.Tensor, *, steps: int = 300,
                            batch_size: int = 32, lr: float = 2e-3, seed: int = 0) -> DomainClassifier:
    """Train a `DomainClassifier` on real images (`N,3,s,s` in [-1, 1]) for a fixed number of steps.

    Each step draws a balanced batch with random horizontal flips, on the images' device.
    Seeded, so the same images give the same classifier.
    """
    if len(images_A) == 0 or len(images_B) == 0:
        raise EvaluationInputError("The domain classifier needs real images of both domains.")
    device = images_A.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DomainClassifier().to(device)
    draw = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
    half = max(1, batch_size // 2)
    labels = torch.cat([torch.zeros(half), torch.ones(half)]).to(device)
    model.train()
    for _ in range(steps):
        pick_A = torch.randint(len(images_A), (half,), generator=draw).to(device)
        pick_B = torch.randint(len(images_B), (half,), generator=draw).to(device)
        x = torch.cat([images_A[pick_A], images_B[pick_B]])
        flip = (torch.rand(len(x), generator=draw) < 0.5).to(device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        loss = F.binary_cross_entropy_with_logits(model(x), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def _shrink(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _load_small(paths: Sequence[Path], image_size: int, size: int, device: Any,
                batch_size: int) -> torch.Tensor:
    """Real images at the evaluation size, then shrunk to the classifier's size like translations are."""
    return torch.cat([_shrink(load_images(chunk, image_size), size)
                      for chunk in chunks(paths, batch_size)]).to(device)


def evaluate_without_truth(
    gen_A: nn.Module, gen_B: nn.Module, test_A: PathLike, test_B: PathLike, *, kind: str = "hair",
    train_A: PathLike | None = None, train_B: PathLike | None = None, image_size: int = 256,
    classifier_size: int = 64, classifier_steps: int = 300, max_classifier_images: int = 2000,
    inception_weights: PathLike | None = None, device: torch.device | str = "cpu",
    batch_size: int = 8, limit: int | None = None, seed: int = 0,
) -> dict[str, dict]:
    """Classifier-based scores (and FID/KID with local Inception weights) for both directions.

    The classifier learns real A vs real B from `train_A`/`train_B` (at most
    `max_classifier_images` each, drawn with `seed`); without them it learns from every
    other image of the test folders, and only the remaining half is evaluated, so it is
    never scored on images it saw. Per direction: ``domain_score``, ``real_target_score``,
    ``classifier_accuracy``, ``cycle_l1``, ``count`` and, with `inception_weights`, ``fid``,
    ``kid_mean``, ``kid_std`` (real target-domain test images vs translations).
    """
    check_size(image_size)
    check_limit(limit)
    a_to_b, b_to_a, _ = kind_names(kind)
    if (train_A is None) != (train_B is None):
        raise SettingError("Give real training images of both domains (--domain-a and --domain-b, "
                           "train_A and train_B), or neither.")
    eval_A, eval_B = source_paths(test_A, None), source_paths(test_B, None)
    if train_A is None or train_B is None:
        if min(len(eval_A), len(eval_B)) < 2:
            raise EvaluationInputError(
                f"{test_A} and {test_B} need 2+ images each to train and test the domain classifier; "
                "or pass train_A/train_B (--domain-a/--domain-b).")
        clf_A, clf_B, eval_A, eval_B = eval_A[0::2], eval_B[0::2], eval_A[1::2], eval_B[1::2]
    else:
        rng = np.random.default_rng(seed)
        clf_A, clf_B = ([paths[i] for i in np.sort(rng.permutation(len(paths))[:max_classifier_images])]
                        for paths in (source_paths(train_A, None), source_paths(train_B, None)))
    if limit:
        eval_A, eval_B = eval_A[:limit], eval_B[:limit]
    inception = load_inception(inception_weights) if inception_weights is not None else None
    if inception is None:
        print(inception_help())

    real_A = _load_small(clf_A, image_size, classifier_size, device, batch_size)
    real_B = _load_small(clf_B, image_size, classifier_size, device, batch_size)
    classifier = train_domain_classifier(real_A, real_B, steps=classifier_steps, seed=seed)
    del real_A, real_B

    gen_A, gen_B = gen_A.to(device), gen_B.to(device)
    results: dict[str, dict] = {}
    with evaluating(gen_A, gen_B, classifier):
        held_out = {label: (classifier(_load_small(paths, image_size, classifier_size, device, batch_size))
                            > 0).float().cpu() for label, paths in ((0, eval_A), (1, eval_B))}
        accuracy = float(torch.cat([1 - held_out[0], held_out[1]]).mean())
        for name, gen, back, sources, target, target_paths in (
                (a_to_b, gen_B, gen_A, eval_A, 1, eval_B), (b_to_a, gen_A, gen_B, eval_B, 0, eval_A)):
            hits, cycles = [], []
            fid = _FidKid(inception, device) if inception is not None else None
            for chunk in chunks(sources, batch_size):
                src = load_images(chunk, image_size).to(device)
                fake = gen(src)
                cycles.append((to_unit(src) - to_unit(back(fake))).abs().mean((1, 2, 3)).cpu())
                fake_says_B = classifier(_shrink(fake, classifier_size)) > 0
                hits.append((fake_says_B == bool(target)).float().cpu())
                if fid is not None:
                    fid.update(fake, real=False)
            real_hits = held_out[target] if target else 1 - held_out[target]
            results[name] = {
                "domain_score": mean_of(hits),
                "real_target_score": float(real_hits.mean()),
                "classifier_accuracy": accuracy,
                "cycle_l1": mean_of(cycles),
                "count": len(sources),
            }
            if fid is not None:
                for chunk in chunks(target_paths, batch_size):
                    fid.update(load_images(chunk, image_size).to(device), real=True)
                results[name].update(fid.compute())
    return results


# ----------------------------------------------------------------- FID / KID
def inception_help(path: PathLike | None = None) -> str:
    """What to do when FID/KID cannot run: which file, where to get it, which option takes it."""
    where = f"No Inception weights at {path}. " if path is not None else "FID/KID skipped: "
    return (
        f"{where}FID and KID need torch-fidelity's Inception network file {INCEPTION_FILE} "
        f"(about 92 MB). Download it yourself from {INCEPTION_URL} and pass its path with "
        "--inception-weights PATH (inception_weights= in Python). Nothing is downloaded for you."
    )


def has_torch_fidelity() -> bool:
    """True when torch-fidelity (the Inception network torchmetrics' FID/KID use) is installed."""
    return importlib.util.find_spec("torch_fidelity") is not None


def load_inception(path: PathLike) -> nn.Module:
    """torchmetrics' Inception feature extractor (2048 features) with the weights in `path`.

    The file is read with `weights_only=True` first (`safe_load`), because some torch-fidelity
    releases read it with `weights_only=False`: a file that holds anything but tensors is
    refused before that. torch-fidelity is optional (not in requirements.txt): see
    `TORCH_FIDELITY_HELP`.
    """
    from utils.checkpoints import safe_load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(inception_help(path))
    safe_load(path)
    if not has_torch_fidelity():
        raise MissingPackageError(TORCH_FIDELITY_HELP)
    from torchmetrics.image.fid import NoTrainInceptionV3

    return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                              feature_extractor_weights_path=str(path))


class _Features(nn.Module):
    """Hands precomputed Inception features through, so FID and KID share one Inception pass."""

    num_features = 2048

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class _FidKid:
    """FID and KID of one direction (images in [-1, 1]); each image goes through Inception once."""

    def __init__(self, inception: nn.Module, device: Any):
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        self.inception = inception.to(device)
        self.fid = FrechetInceptionDistance(feature=_Features()).to(device)
        with warnings.catch_warnings():  # "KID keeps all features in memory": 8 KB per image, fine
            warnings.filterwarnings("ignore", message=".*save all extracted features.*")
            self.kid = KernelInceptionDistance(feature=_Features(), subset_size=2).to(device)
        self.counts = {True: 0, False: 0}

    def update(self, images: torch.Tensor, real: bool) -> None:
        features = self.inception((to_unit(images) * 255).round().to(torch.uint8))
        self.fid.update(features, real=real)
        self.kid.update(features, real=real)
        self.counts[real] += len(images)

    def compute(self) -> dict[str, float]:
        if min(self.counts.values()) < 2:
            return {"fid": math.nan, "kid_mean": math.nan, "kid_std": math.nan}
        self.kid.subset_size = min(1000, *self.counts.values())
        kid_mean, kid_std = self.kid.compute()
        return {"fid": float(self.fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std)}


