"""Why a trained pair misses the demo's targets: which half of the accuracy test fails, and how
much of the error outside the hair is one overall colour shift.

`utils.evaluate` counts a translation as correct when (i) the hair's mean colour is nearer the
target's than the source's and (ii) the rest of the face moved by less than 0.1 on average.
This script reports each condition's pass rate separately, and PSNR outside the hair twice:
as scored, and after subtracting each image's mean colour difference outside the hair. The
chapter's generator cannot see that difference: an instance norm follows its first convolution,
so adding a constant to a colour channel of the input changes nothing (tests/test_ch06util.py
checks it). The gap between the two PSNRs is what guessing the overall colour costs.

    python benchmarks/error_breakdown.py files/demo/run          # the last `make demo`
    python benchmarks/error_breakdown.py RUN --data files/synthetic --size 64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from utils import evaluate as ev  # noqa: E402
from utils.ch06util import list_images  # noqa: E402
from utils.checkpoints import load_generator  # noqa: E402
from utils.demo import DEMO  # noqa: E402
from utils.inference import load_images  # noqa: E402
from utils.paths import files_dir  # noqa: E402
from utils.train import GEN_BLACK, GEN_BLOND  # noqa: E402


def breakdown(gen: torch.nn.Module, sources: list[Path], truth_dir: Path, size: int) -> dict[str, float]:
    swapped, masks = ev.truth_files(truth_dir, sources)
    with torch.inference_mode():
        src = load_images(sources, size)
        fake = ev.to_unit(gen.eval()(src))
    src, truth, coverage = ev.to_unit(src), ev.to_unit(load_images(swapped, size)), ev.load_masks(masks, size)
    core = coverage >= 0.5
    inside = ev.shrink_mask(core, 1)
    inside = torch.where(inside.sum((1, 2, 3), keepdim=True) == 0, core, inside)
    outside = ~ev.grow_mask(coverage > 0, 2)
    colour = ev.masked_mean_color(fake, inside)
    colour_ok = ((colour - ev.masked_mean_color(truth, inside)).norm(dim=1)
                 < (colour - ev.masked_mean_color(src, inside)).norm(dim=1))
    weights = outside.float().expand_as(src)
    mae = ((fake - src).abs() * weights).sum((1, 2, 3)) / weights.sum((1, 2, 3))
    shift = ((fake - src) * weights).sum((2, 3)) / weights.sum((2, 3))
    unshifted = (fake - shift[:, :, None, None]).clamp(0, 1)
    return {"hair_colour_right": float(colour_ok.float().mean()),
            "rest_kept_mae_below_0.1": float((mae < 0.1).float().mean()),
            "hair_accuracy": float((colour_ok & (mae < 0.1)).float().mean()),
            "psnr_outside_hair": float(ev.psnr(fake, src, outside).mean()),
            "psnr_without_colour_shift": float(ev.psnr(unshifted, src, outside).mean()),
            "mean_abs_colour_shift": float(shift.abs().mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="folder with gen_black.pth and gen_blond.pth")
    parser.add_argument("--data", type=Path, default=files_dir() / "synthetic",
                        help="the built-in faces (test/black, test/blond, ground_truth/celeba)")
    parser.add_argument("--size", type=int, default=DEMO.image_size)
    args = parser.parse_args(argv)
    gen_black, gen_blond = (load_generator(args.run / name) for name in (GEN_BLACK, GEN_BLOND))
    truth = args.data / "ground_truth" / "celeba"
    test = args.data / "test"
    rows = {"black_to_blond": breakdown(gen_blond, list_images(test / "black"), truth, args.size),
            "blond_to_black": breakdown(gen_black, list_images(test / "blond"), truth, args.size)}
    print(f"{'':28s}" + "".join(f"{name:>16s}" for name in rows))
    for key in rows["black_to_blond"]:
        print(f"{key:28s}" + "".join(f"{row[key]:16.3f}" for row in rows.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
