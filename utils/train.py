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

This module is the command line and the public face; the work lives in rooms of one job each:
`utils.settings` (TrainConfig, presets), `utils.run_loop` (`train`), `utils.run_state`
(checkpoints, history), `utils.train_data` (order of pairs, pool, lr), `utils.networks`,
`utils.distributed` (torchrun).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from utils.ch06util import GENERATOR_VARIANTS
from utils.cli import INTERRUPTED_EXIT, TERMINATED_EXIT, command
from utils.run_loop import TrainEvent, TrainResult, train
from utils.run_state import CHECKPOINT, GEN_BLACK, GEN_BLOND, HISTORY, PREVIOUS_CHECKPOINT, SAMPLES
from utils.settings import PRESET_NAMES, PRESETS, TrainConfig, preset_options
from utils.train_data import ImagePool, ResumableSampler, ResumeMismatchError, SeededPairs, learning_rate

STOP_EXIT = {"interrupted": INTERRUPTED_EXIT, "terminated": TERMINATED_EXIT}  # Ctrl-C: 130, SIGTERM: 143

# The public face of training, re-exported from the modules that hold it (see utils/__init__.py).
__all__ = [
    "CHECKPOINT", "GEN_BLACK", "GEN_BLOND", "HISTORY",
    "PRESETS", "PRESET_NAMES", "PREVIOUS_CHECKPOINT", "SAMPLES", "ImagePool", "ResumableSampler",
    "ResumeMismatchError", "SeededPairs", "TrainConfig", "TrainEvent", "TrainResult", "build_parser",
    "config_from_args", "learning_rate", "main", "preset_options", "train",
]


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
    p.add_argument("--preset", choices=PRESET_NAMES, default=None,
                   help="chapter (default): lr 1e-5, options off; paper: lr 2e-4, identity 5, pool 50, "
                        "decay over the second half; demo: the sizes and settings of `make demo` "
                        "(explicit flags override; on --resume, left out: the run's own)")
    p.add_argument("--image-size", type=int, help="training image side (default 256)")
    p.add_argument("--iterations", type=int, help="the run's TOTAL iterations (same number on --resume)")
    p.add_argument("--epochs", type=int, help="the run's total epochs (default 1 when no budget given)")
    p.add_argument("--minutes", type=float, help="stop this session after M minutes (then --resume)")
    p.add_argument("--batch-size", type=int, help="images per iteration and process (default 1)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --out (fresh start if none), with the "
                        "run's own settings; a setting given with another value is refused or applied "
                        "with a line saying so")
    p.add_argument("--force", action="store_true", default=None,
                   help="replace files in --out that this run did not write (e.g. the book's "
                        "gen_black.pth / gen_blond.pth from `make weights`)")
    p.add_argument("--resume-anyway", action="store_true", default=None,
                   help="--resume even if the domain folders differ from the run's (other folders, "
                        "A and B swapped) or a setting that shapes the run does (image size, batch, "
                        "seed, pairing, pool); refused without it")
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
                   help="float32 everywhere (default: bf16/fp16 autocast on CUDA, bf16 on CPUs "
                        "with AMX or AVX512-BF16; CH06_CPU_AMP=0 also keeps a CPU in float32)")
    p.add_argument("--fast-gpu", action="store_true", default=None,
                   help="CUDA: compiled networks (CUDA graphs), channels-last, a picked batch size "
                        "with a scaled lr (printed); the chapter's model and losses (utils/fast_gpu.py)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A `TrainConfig` from parsed CLI arguments: the preset, then every flag given.

    The settings given (the flags, and the preset's when `--preset` is given) are recorded as
    `explicit`: on --resume the others are the run's own, read from its checkpoint."""
    skip = {"preset", "quiet"}
    overrides = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    if overrides.get("resume_anyway"):
        overrides["resume"] = True
    preset = args.preset or "chapter"
    given = {*overrides, *(preset_options(preset) if args.preset else ())}
    return TrainConfig.from_preset(preset, **overrides, explicit=frozenset(given))


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Reader mistakes (a bad setting, an empty or unwritable folder, a full disk, a resume on
    other data) end in one line and exit code 2 (`utils.cli`); bugs keep their traceback."""
    args = build_parser().parse_args(argv)
    result = train(config_from_args(args), progress=not args.quiet)
    return STOP_EXIT.get(result.reason, 0)


if __name__ == "__main__":
    sys.exit(main())
