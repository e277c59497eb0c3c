"""Numbers for how well a pair of generators translates, with ground truth and without.

Looking at a grid of samples tells a reader *whether* hair changed colour; these
functions say *how often* it changed to the right colour, how much of the rest of the
face was disturbed and how far the result is from the answer. (Extra code – not in the book.)

* With ground truth (the built-in synthetic faces): every held-out face has a render of
  the same face with the other hair colour (`truth/swapped/<stem>.png`) and the hair mask
  (`truth/mask/<stem>.png`, 255 = hair). `evaluate_with_truth` reports per direction:

  - ``hair_accuracy``: the share of images whose translation has the *target* hair colour.
    An image counts as correct when both hold:
    (i) inside the hair mask (pixels at least half covered by hair after resizing, shrunk by
    `erode_px`; the unshrunk mask when shrinking leaves nothing, as for thin glasses frames)
    the translation's mean RGB colour is nearer (Euclidean) to the swapped render's mean
    colour there than to the source's; and
    (ii) outside the hair mask (any pixel touched by hair, grown by `grow_px`) the mean
    absolute difference from the source is below `max_outside_mae` (in [0, 1] units).
    An unchanged image fails (i); recolouring the whole picture fails (ii). Images whose mask
    is empty are left out of the share (there is nothing to judge).
  - ``psnr_outside_hair``: mean over images of the PSNR (dB, images in [0, 1]) between the
    translation and the source outside the grown mask; an image with no error gets
    `max_db` (100 dB) instead of infinity so that the mean stays finite.
  - ``ssim_outside_hair``: mean over images of the SSIM map (torchmetrics, 11x11 Gaussian
    window, sigma 1.5, data range 1) averaged over the pixels outside the grown mask.
  - ``l1_to_truth``: mean |translation - swapped render| over the whole image, [0, 1] units.
  - ``cycle_l1``: mean |source - gen_back(gen(source))|, [0, 1] units (half the value the
    training log shows, which measures in the models' [-1, 1] units).
  - ``count``: how many source images were translated.

  With `kind="glasses"` the same functions run on the frame mask, the directions are named
  ``remove_glasses`` / ``add_glasses`` and the keys say ``glasses`` instead of ``hair``.

* Without ground truth (real CelebA, glasses, any two folders): `evaluate_without_truth`
  trains a small `DomainClassifier` on real A vs real B images and reports the share of
  translations it assigns to the target domain (``domain_score``), the same share for real
  held-out target images (``real_target_score``, what a perfect translator would reach), its
  held-out accuracy on real images (``classifier_accuracy``: trust ``domain_score`` only when
  this is high), ``cycle_l1`` and ``count``; plus FID and KID (torchmetrics) when the reader
  supplies the Inception weights file and has installed the optional torch-fidelity. Nothing
  is ever downloaded.

Command line: ``python -m utils.evaluate --gen-black files/gen_black.pth --gen-blond
files/gen_blond.pth --test-a files/test/black --test-b files/test/blond [--truth DIR]``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from utils.ch06util import list_images
from utils.cli import SettingError, UserError, command
from utils.inference import load_images
from utils.paths import atomic_write_text

PathLike = str | os.PathLike


class EvaluationInputError(UserError, ValueError):
    """The images or files given to score are not usable (an empty folder, too few images)."""


class MissingPackageError(UserError, ImportError):
    """An optional package a requested score needs is not installed; the message says how to install it."""

# kind -> (name of A->B made by gen_B, name of B->A made by gen_A, the masked region's word)
KINDS: dict[str, tuple[str, str, str]] = {
    "hair": ("black_to_blond", "blond_to_black", "hair"),
    "glasses": ("remove_glasses", "add_glasses", "glasses"),
}

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
TORCH_FIDELITY_HELP = (
    "FID/KID need the optional package torch-fidelity: pip install \"torch-fidelity>=0.3,<0.4\". "
    "(Avoid 0.4.0: its wheel also installs a top-level `tests` package, which hides this "
    "repository's tests/ folder and breaks `pytest tests`.)"
)


# ------------------------------------------------------------------ tensor helpers
def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Model space [-1, 1] to [0, 1], the range every reported figure is measured in."""
    return (images.clamp(-1, 1) + 1) / 2


def grow_mask(mask: torch.Tensor, px: int) -> torch.Tensor:
    """Boolean `N,1,H,W` mask dilated by `px` pixels (a square neighbourhood)."""
    if px <= 0:
        return mask
    return F.max_pool2d(mask.float(), kernel_size=2 * px + 1, stride=1, padding=px) > 0


def shrink_mask(mask: torch.Tensor, px: int) -> torch.Tensor:
    """Boolean `N,1,H,W` mask eroded by `px` pixels, so that edge pixels blended with skin drop out."""
    return ~grow_mask(~mask, px)


def masked_mean_color(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean colour (`N,3`) of each image over its mask (`N,1,H,W`); zeros where the mask is empty."""
    weights = mask.to(images.dtype)
    return (images * weights).sum((2, 3)) / weights.sum((2, 3)).clamp(min=1)


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
         max_db: float = 100.0) -> torch.Tensor:
    """Per-image PSNR in dB of `[0, 1]` images over `mask` (all pixels when None), capped at `max_db`.

    PSNR = 10 log10(1 / MSE). A perfect match has MSE 0 and infinite PSNR; the cap keeps
    means and JSON finite. An empty mask also gives `max_db` (no pixel differs).
    """
    if mask is None:
        mask = torch.ones_like(pred[:, :1], dtype=torch.bool)
    weights = mask.to(pred.dtype).expand_as(pred)
    mse = ((pred - target) ** 2 * weights).sum((1, 2, 3)) / weights.sum((1, 2, 3)).clamp(min=1)
    db = 10 * torch.log10(1 / mse.clamp(min=1e-30))
    return db.clamp(max=max_db)


def masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of `[0, 1]` images averaged over the pixels of `mask` (`N,1,H,W`).

    The SSIM map is torchmetrics' (Gaussian window 11, sigma 1.5), averaged over channels.
    Windows near the mask's edge still see some masked pixels: grow the mask to exclude them.
    An empty mask gives 1.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    # float64 (but Apple's MPS has none): in flat regions SSIM divides by variances near 0,
    # where float32 rounding shows (identical images score 0.9999 instead of 1)
    exact = torch.float32 if pred.device.type == "mps" else torch.float64
    _, ssim_map = structural_similarity_index_measure(
        pred.to(exact), target.to(exact), data_range=1.0, reduction="none", return_full_image=True)
    weights = mask.to(ssim_map.dtype)
    per_pixel = ssim_map.mean(1, keepdim=True)
    total = weights.sum((1, 2, 3))
    mean = (per_pixel * weights).sum((1, 2, 3)) / total.clamp(min=1)
    return torch.where(total > 0, mean, torch.ones_like(mean)).to(pred.dtype)


def target_reached(source: torch.Tensor, output: torch.Tensor, truth: torch.Tensor,
                   inside: torch.Tensor, outside: torch.Tensor,
                   max_outside_mae: float = 0.1) -> torch.Tensor:
    """Per image: 1.0 when `output` has the target colour inside and left the rest alone, else 0.0.

    All images in [0, 1]. (i) The mean colour of `output` over `inside` is nearer to the mean
    of `truth` there than to the mean of `source`; (ii) the mean absolute difference between
    `output` and `source` over `outside` is below `max_outside_mae`. NaN where `inside` is empty.
    """
    out_color = masked_mean_color(output, inside)
    to_truth = (out_color - masked_mean_color(truth, inside)).norm(dim=1)
    to_source = (out_color - masked_mean_color(source, inside)).norm(dim=1)
    weights = outside.to(source.dtype).expand_as(source)
    outside_mae = ((output - source).abs() * weights).sum((1, 2, 3)) / weights.sum((1, 2, 3)).clamp(min=1)
    correct = ((to_truth < to_source) & (outside_mae < max_outside_mae)).to(source.dtype)
    empty = inside.sum((1, 2, 3)) == 0
    return torch.where(empty, torch.full_like(correct, math.nan), correct)


def colour_offset_effect(gen: nn.Module, images: torch.Tensor,
                         offset: Sequence[float] = (0.3, -0.2, 0.1)) -> float:
    """The largest change in `gen`'s output when `offset` is added to each colour channel of `images`.

    About 1e-6 for the chapter's generator, whatever its weights: an instance norm follows its
    first convolution and removes the shift (the README's "What `make demo` shows"), so it
    cannot see an image's overall colour and must guess it from the content.
    """
    shift = torch.tensor(offset, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    with torch.inference_mode():
        return float((gen(images + shift) - gen(images)).abs().max())


# -------------------------------------------------------------------- files
def load_masks(paths: Sequence[Path], image_size: int) -> torch.Tensor:
    """Masks (mode L, 255 = region) as `N,1,S,S` coverage in [0, 1] (box-filter area average)."""
    masks = []
    for path in paths:
        with Image.open(path) as image:
            small = image.convert("L").resize((image_size, image_size), Image.Resampling.BOX)
        masks.append(torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0))
    return torch.stack(masks).unsqueeze(1)


def truth_files(truth_dir: PathLike, sources: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """`swapped/<stem>.png` and `mask/<stem>.png` of each source image, or a clear error."""
    truth_dir = Path(truth_dir)
    swapped = [truth_dir / "swapped" / f"{p.stem}.png" for p in sources]
    masks = [truth_dir / "mask" / f"{p.stem}.png" for p in sources]
    missing = [p for p in swapped + masks if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} ground-truth file(s) missing in {truth_dir}, e.g. {missing[0]}. "
            "--truth must be the ground_truth/<kind> folder written with the synthetic faces "
            "(it holds swapped/ and mask/); for real photos leave --truth out."
        )
    return swapped, masks


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise SettingError(f"limit={limit}: use a number of images per direction, or 0 (or nothing) "
                           "for all of them (--limit).")


def _source_paths(folder: PathLike, limit: int | None) -> list[Path]:
    """The images of `folder`, sorted; the first `limit` of them when `limit` is positive (0: all)."""
    _check_limit(limit)
    paths = list_images(folder)
    if not paths:
        raise EvaluationInputError(
            f"No images in {folder}. Point it at a folder of held-out .jpg/.png faces (split with "
            "`python -m utils.prepare split celeba --test-count 100` to get files/test/black and blond).")
    return paths[:limit] if limit else paths


def _check_size(image_size: int) -> None:
    if image_size < 8 or image_size % 4:
        raise SettingError(f"image_size={image_size}: use a multiple of 4, at least 8 "
                           "(the generator halves the size twice).")


@contextlib.contextmanager
def _evaluating(*modules: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd inside; the modules' previous training flags afterwards."""
    flags = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.inference_mode():
            yield
    finally:
        for m, flag in zip(modules, flags, strict=True):
            m.train(flag)


def _mean(values: list[torch.Tensor]) -> float:
    joined = torch.cat(values) if values else torch.empty(0)
    joined = joined[~joined.isnan()]
    return float(joined.mean()) if joined.numel() else math.nan


# ------------------------------------------------------------ with ground truth
def evaluate_direction_with_truth(
    gen: nn.Module, gen_back: nn.Module, source_dir: PathLike, truth_dir: PathLike, *,
    region: str = "hair", image_size: int = 256, device: torch.device | str = "cpu",
    batch_size: int = 8, erode_px: int = 1, grow_px: int = 2, max_outside_mae: float = 0.1,
    max_db: float = 100.0, limit: int | None = None,
) -> dict[str, float | int]:
    """Translate every image of `source_dir` with `gen` and score it against the ground truth.

    Returns ``{f"{region}_accuracy", f"psnr_outside_{region}", f"ssim_outside_{region}",
    "l1_to_truth", "cycle_l1", "count"}`` as defined in the module docstring.
    """
    _check_size(image_size)
    sources = _source_paths(source_dir, limit)
    swapped_paths, mask_paths = truth_files(truth_dir, sources)
    gen, gen_back = gen.to(device), gen_back.to(device)
    acc, psnrs, ssims, l1s, cycles = [], [], [], [], []
    with _evaluating(gen, gen_back):
        for batch in _chunks(range(len(sources)), batch_size):
            src = load_images([sources[i] for i in batch], image_size).to(device)
            truth = to_unit(load_images([swapped_paths[i] for i in batch], image_size).to(device))
            coverage = load_masks([mask_paths[i] for i in batch], image_size).to(device)
            fake = gen(src)
            back = gen_back(fake)
            src01, fake01 = to_unit(src), to_unit(fake)
            core = coverage >= 0.5
            inside = shrink_mask(core, erode_px)
            keep_raw = inside.sum((1, 2, 3), keepdim=True) == 0
            inside = torch.where(keep_raw, core, inside)
            outside = ~grow_mask(coverage > 0, grow_px)
            acc.append(target_reached(src01, fake01, truth, inside, outside, max_outside_mae).cpu())
            psnrs.append(psnr(fake01, src01, outside, max_db).cpu())
            ssims.append(masked_ssim(fake01, src01, outside).cpu())
            l1s.append((fake01 - truth).abs().mean((1, 2, 3)).cpu())
            cycles.append((src01 - to_unit(back)).abs().mean((1, 2, 3)).cpu())
    return {
        f"{region}_accuracy": _mean(acc),
        f"psnr_outside_{region}": _mean(psnrs),
        f"ssim_outside_{region}": _mean(ssims),
        "l1_to_truth": _mean(l1s),
        "cycle_l1": _mean(cycles),
        "count": len(sources),
    }


def evaluate_with_truth(gen_A: nn.Module, gen_B: nn.Module, test_A: PathLike, test_B: PathLike,
                        truth: PathLike, *, kind: str = "hair", **options: Any) -> dict[str, dict]:
    """Both directions: gen_B on the A test images, gen_A on the B test images.

    `truth` is the ground_truth/<kind> folder; `options` go to `evaluate_direction_with_truth`.
    Returns ``{"black_to_blond": {...}, "blond_to_black": {...}}`` (or the glasses names).
    """
    a_to_b, b_to_a, region = _kind(kind)
    return {
        a_to_b: evaluate_direction_with_truth(gen_B, gen_A, test_A, truth, region=region, **options),
        b_to_a: evaluate_direction_with_truth(gen_A, gen_B, test_B, truth, region=region, **options),
    }


def _kind(kind: str) -> tuple[str, str, str]:
    if kind not in KINDS:
        raise SettingError(f"kind={kind!r}: use one of {sorted(KINDS)}.")
    return KINDS[kind]


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
                      for chunk in _chunks(paths, batch_size)]).to(device)


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
    _check_size(image_size)
    _check_limit(limit)
    a_to_b, b_to_a, _ = _kind(kind)
    if (train_A is None) != (train_B is None):
        raise SettingError("Give real training images of both domains (--domain-a and --domain-b, "
                           "train_A and train_B), or neither.")
    eval_A, eval_B = _source_paths(test_A, None), _source_paths(test_B, None)
    if train_A is None or train_B is None:
        if min(len(eval_A), len(eval_B)) < 2:
            raise EvaluationInputError(
                f"{test_A} and {test_B} need 2+ images each to train and test the domain classifier; "
                "or pass train_A/train_B (--domain-a/--domain-b).")
        clf_A, clf_B, eval_A, eval_B = eval_A[0::2], eval_B[0::2], eval_A[1::2], eval_B[1::2]
    else:
        rng = np.random.default_rng(seed)
        clf_A, clf_B = ([paths[i] for i in np.sort(rng.permutation(len(paths))[:max_classifier_images])]
                        for paths in (_source_paths(train_A, None), _source_paths(train_B, None)))
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
    with _evaluating(gen_A, gen_B, classifier):
        held_out = {label: (classifier(_load_small(paths, image_size, classifier_size, device, batch_size))
                            > 0).float().cpu() for label, paths in ((0, eval_A), (1, eval_B))}
        accuracy = float(torch.cat([1 - held_out[0], held_out[1]]).mean())
        for name, gen, back, sources, target, target_paths in (
                (a_to_b, gen_B, gen_A, eval_A, 1, eval_B), (b_to_a, gen_A, gen_B, eval_B, 0, eval_A)):
            hits, cycles = [], []
            fid = _FidKid(inception, device) if inception is not None else None
            for chunk in _chunks(sources, batch_size):
                src = load_images(chunk, image_size).to(device)
                fake = gen(src)
                cycles.append((to_unit(src) - to_unit(back(fake))).abs().mean((1, 2, 3)).cpu())
                fake_says_B = classifier(_shrink(fake, classifier_size)) > 0
                hits.append((fake_says_B == bool(target)).float().cpu())
                if fid is not None:
                    fid.update(fake, real=False)
            real_hits = held_out[target] if target else 1 - held_out[target]
            results[name] = {
                "domain_score": _mean(hits),
                "real_target_score": float(real_hits.mean()),
                "classifier_accuracy": accuracy,
                "cycle_l1": _mean(cycles),
                "count": len(sources),
            }
            if fid is not None:
                for chunk in _chunks(target_paths, batch_size):
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


# --------------------------------------------------------------------- output
def to_json(results: dict[str, dict]) -> str:
    """Strict JSON (NaN becomes null) for `metrics.json`."""
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value
    return json.dumps(clean(results), indent=2, allow_nan=False)


def write_json(results: dict, path: PathLike) -> Path:
    """`to_json(results)` into `path`, atomically: a crash never leaves half a metrics file."""
    return atomic_write_text(Path(path), to_json(results) + "\n")


def score_held_out(gen_A: nn.Module, gen_B: nn.Module, data: Any, image_size: int, *,
                   kind: str = "hair", device: torch.device | str = "cpu",
                   seed: int = 0) -> tuple[dict[str, dict], str]:
    """Held-out scores of a `utils.prepare.DataChoice`, and what they were measured against.

    Built-in faces: against their ground-truth renders. Real photos have none, so a small
    domain classifier trained on the real training faces judges the translations instead.
    """
    if data.truth is not None:
        return (evaluate_with_truth(gen_A, gen_B, data.test_A, data.test_B, data.truth, kind=kind,
                                    image_size=image_size, device=device),
                "against the synthetic faces' ground truth")
    return (evaluate_without_truth(gen_A, gen_B, data.test_A, data.test_B, kind=kind,
                                   train_A=data.domain_A, train_B=data.domain_B,
                                   image_size=image_size, device=device, seed=seed),
            "by a domain classifier trained on the real faces (photos have no ground truth)")


def format_table(results: dict[str, dict]) -> str:
    """Metrics as rows, directions as columns, for a terminal or a notebook cell."""
    names = list(results)
    keys = list(dict.fromkeys(k for r in results.values() for k in r))
    width = max(len(k) for k in keys) + 2
    lines = ["".ljust(width) + "".join(n.rjust(16) for n in names)]
    for key in keys:
        cells = []
        for name in names:
            value = results[name].get(key)
            cells.append("-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value))
        lines.append(key.ljust(width) + "".join(c.rjust(16) for c in cells))
    return "\n".join(lines)


# (flag, smallest allowed value) of the command line's whole-number settings
_MINIMUMS = (("image_size", 8), ("num_features", 1), ("num_residuals", 0), ("batch_size", 1), ("limit", 0),
             ("classifier_steps", 1), ("classifier_size", 8))


def check_settings(args: argparse.Namespace) -> None:
    """Refuse a setting out of range with one line naming the flag and the allowed range."""
    for name, minimum in _MINIMUMS:
        value = getattr(args, name)
        if value is not None and value < minimum:
            flag = "--" + name.replace("_", "-")
            extra = " (0 means all images)" if name == "limit" else ""
            raise SettingError(f"{flag} must be at least {minimum}{extra}, got {value}.")
    _check_size(args.image_size)
    if args.truth:
        ignored = [flag for flag, value in (("--domain-a", args.domain_a), ("--domain-b", args.domain_b),
                                            ("--inception-weights", args.inception_weights)) if value]
        if ignored:
            raise SettingError(f"{', '.join(ignored)} only apply without --truth (they score real photos "
                               "without ground truth): leave them out, or leave out --truth.")


def training_size(gen_path: PathLike, default: int = 256) -> tuple[int, str]:
    """The image size a generator was trained at, read from the run's `checkpoint.pt` beside it.

    Scoring at another size than the training one gives other (usually worse) numbers without
    a word, so the command line uses this unless `--image-size` is given. The generator files
    themselves do not record it; without a readable checkpoint the chapter's 256 is used.
    """
    from utils.checkpoints import CheckpointError, safe_load

    checkpoint = Path(gen_path).parent / "checkpoint.pt"
    try:  # mmap: only the small "config" entry is read from a file that may hold hundreds of MB
        size = safe_load(checkpoint, mmap=True)["config"]["image_size"]
        if isinstance(size, int) and size > 0:
            return size, f"the size {checkpoint} was trained at"
    except (CheckpointError, KeyError, TypeError):  # absent, damaged or another format: the default
        pass
    return default, f"the chapter's size: no training size found in {checkpoint}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m utils.evaluate", description=main.__doc__)
    parser.add_argument("--gen-black", required=True, help="gen_A (makes domain A), e.g. files/gen_black.pth")
    parser.add_argument("--gen-blond", required=True, help="gen_B (makes domain B), e.g. files/gen_blond.pth")
    parser.add_argument("--test-a", required=True, help="held-out real images of domain A")
    parser.add_argument("--test-b", required=True, help="held-out real images of domain B")
    parser.add_argument("--truth", help="ground_truth/<kind> folder (synthetic faces): scores against it")
    parser.add_argument("--kind", choices=sorted(KINDS), default="hair")
    parser.add_argument("--image-size", type=int,
                        help="side the images are scored at (default: the size recorded in checkpoint.pt "
                             "beside --gen-black, as utils.train and make demo write it; else 256)")
    parser.add_argument("--num-features", type=int,
                        help="generator width (default: read from the weights file)")
    parser.add_argument("--num-residuals", type=int,
                        help="generator residual blocks (default: read from the weights file)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, default=0,
                        help="evaluate at most this many images per direction (default 0: all)")
    parser.add_argument("--device", help="cpu, cuda, mps (default: the fastest present)")
    parser.add_argument("--domain-a", help="real A images to train the domain classifier (no --truth)")
    parser.add_argument("--domain-b", help="real B images to train the domain classifier (no --truth)")
    parser.add_argument("--classifier-steps", type=int, default=300)
    parser.add_argument("--classifier-size", type=int, default=64)
    parser.add_argument("--inception-weights", help=f"local {INCEPTION_FILE} for FID/KID (no --truth)")
    parser.add_argument("--json", help="write the metrics here (e.g. files/metrics.json)")
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Command line: load two generators, evaluate, print a table, write JSON.

    Exit status 0, or 2 with one `error:` line for a mistake to fix (a missing file, an empty
    folder, a setting out of range, weights of another size); see `utils.cli`.
    """
    from utils.checkpoints import load_generator
    from utils.runtime import pick_device

    args = build_parser().parse_args(argv)
    if args.image_size is None:
        args.image_size, where = training_size(args.gen_black)
        print(f"Scoring at {args.image_size} px ({where}; --image-size sets another size).")
    check_settings(args)
    device = pick_device(args.device)
    size = {"num_features": args.num_features, "num_residuals": args.num_residuals}  # None: from the file
    gen_A = load_generator(args.gen_black, device, **size)
    gen_B = load_generator(args.gen_blond, device, **size)
    common = {"kind": args.kind, "image_size": args.image_size, "device": device,
              "batch_size": args.batch_size, "limit": args.limit}
    if args.truth:
        results = evaluate_with_truth(gen_A, gen_B, args.test_a, args.test_b, args.truth, **common)
    else:
        results = evaluate_without_truth(
            gen_A, gen_B, args.test_a, args.test_b, train_A=args.domain_a, train_B=args.domain_b,
            classifier_size=args.classifier_size, classifier_steps=args.classifier_steps,
            inception_weights=args.inception_weights, **common)
    print(format_table(results))
    if args.json:
        print(f"Wrote {write_json(results, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
