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
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.checkpoints import load_generator, trained_image_size
from utils.cli import SettingError, command
from utils.domain_metrics import (
    INCEPTION_FILE,
    INCEPTION_URL,
    TORCH_FIDELITY_HELP,
    DomainClassifier,
    evaluate_without_truth,
    has_torch_fidelity,
    inception_help,
    load_inception,
    train_domain_classifier,
)
from utils.ownership import output_file, refuse_foreign, write_owned
from utils.paths import atomic_write_text
from utils.truth_metrics import (
    KINDS,
    EvaluationInputError,
    MissingPackageError,
    check_size,
    colour_offset_effect,
    evaluate_direction_with_truth,
    evaluate_with_truth,
    grow_mask,
    load_masks,
    masked_mean_color,
    masked_ssim,
    psnr,
    shrink_mask,
    target_reached,
    to_unit,
    truth_files,
)

# the scores, re-exported: notebooks, benchmarks and readers import them from here
__all__ = [
    "DomainClassifier",
    "EvaluationInputError",
    "INCEPTION_FILE",
    "INCEPTION_URL",
    "KINDS",
    "MissingPackageError",
    "TORCH_FIDELITY_HELP",
    "build_parser",
    "check_settings",
    "colour_offset_effect",
    "evaluate_direction_with_truth",
    "evaluate_with_truth",
    "evaluate_without_truth",
    "format_table",
    "grow_mask",
    "has_torch_fidelity",
    "inception_help",
    "load_inception",
    "load_masks",
    "main",
    "masked_mean_color",
    "masked_ssim",
    "psnr",
    "score_held_out",
    "shrink_mask",
    "target_reached",
    "to_json",
    "to_unit",
    "train_domain_classifier",
    "training_size",
    "truth_files",
    "write_json",
]

PathLike = str | os.PathLike
OWNER = "utils.evaluate"  # how the --json files it writes are marked (utils.ownership)


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
    if args.image_size is not None:  # else read from the run's checkpoint, then checked again
        check_size(args.image_size)
    if args.truth:
        ignored = [flag for flag, value in (("--domain-a", args.domain_a), ("--domain-b", args.domain_b),
                                            ("--inception-weights", args.inception_weights)) if value]
        if ignored:
            raise SettingError(f"{', '.join(ignored)} only apply without --truth (they score real photos "
                               "without ground truth): leave them out, or leave out --truth.")


def training_size(gen_path: PathLike, generators: dict[str, nn.Module], default: int = 256
                  ) -> tuple[int, str]:
    """The image size a generator was trained at, read from the run's `checkpoint.pt` beside it,
    and only if that checkpoint holds these `generators` ("gen_A" / "gen_B"): after `make weights
    --force` over a trained run, its checkpoint describes other generators (the check `translate`
    uses, `checkpoints.trained_image_size`).

    Scoring at another size than the training one gives other (usually worse) numbers without
    a word, so the command line uses this unless `--image-size` is given. The generator files
    themselves do not record it; without a checkpoint of theirs the chapter's 256 is used.
    """
    checkpoint = Path(gen_path).parent / "checkpoint.pt"
    size = trained_image_size(checkpoint, generators)
    if size is not None and size > 0:
        return size, f"the size {checkpoint} was trained at"
    if checkpoint.is_file():
        return default, (f"the chapter's size: {checkpoint} does not hold these generators (another "
                         "run's, or damaged), so its size is not theirs")
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
    parser.add_argument("--force", action="store_true",
                        help="replace a --json file that evaluate did not write")
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Command line: load two generators, evaluate, print a table, write JSON.

    Exit status 0, or 2 with one `error:` line for a mistake to fix (a missing file, an empty
    folder, a setting out of range, weights of another size); see `utils.cli`.
    """
    from utils.runtime import pick_device

    args = build_parser().parse_args(argv)
    check_settings(args)
    device = pick_device(args.device)
    if args.json:  # before any work: a folder, or a file evaluate did not write, is refused at once
        json_path = output_file(args.json, "--json")
        if not args.force:
            refuse_foreign(json_path.parent, [json_path.name], OWNER,
                           fix="Give another --json file, move that one, or pass --force to replace it.")
    size = {"num_features": args.num_features, "num_residuals": args.num_residuals}  # None: from the file
    gen_A = load_generator(args.gen_black, device, **size)
    gen_B = load_generator(args.gen_blond, device, **size)
    if args.image_size is None:
        args.image_size, where = training_size(args.gen_black, {"gen_A": gen_A, "gen_B": gen_B})
        print(f"Scoring at {args.image_size} px ({where}; --image-size sets another size).")
    check_settings(args)
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
        written = write_owned(args.json, OWNER, lambda path: write_json(results, path), fix="", force=True,
                              flag="--json")
        print(f"Wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
