"""`make demo`: one command that shows the chapter's CycleGAN learning, with numbers to prove it.

(Extra code – not in the book.) On a fresh machine, with nothing downloaded, it

1. generates the built-in synthetic faces (or uses the real CelebA download in `files/`),
2. splits them with the chapter's rule, holding faces out of training (`utils.prepare.ensure_data`),
3. trains the chapter's `Generator`/`Discriminator` pair in both directions with the chapter's
   losses (`utils.train.train`) within a fixed budget of iterations AND minutes,
4. scores the held-out faces against the ground-truth renders (`utils.evaluate`), and
5. writes round-trip grids, the loss curves and `metrics.json` to `files/demo/`.

Why the settings differ from the chapter's (256 px, 64 wide, 9 blocks, batch 1, lr 1e-5,
one epoch of 48,472 iterations): that recipe needs hours on a GPU. The demo must finish in
15 minutes on a 2-core laptop CPU, so it keeps the architecture and the losses and shrinks
the sizes; see `DEMO` and benchmarks/demo_frontier.py for the measurements behind each choice.

    python -m utils.demo [--minutes 14] [--iterations N] [--out DIR] [--seed 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from utils.paths import files_dir

if TYPE_CHECKING:
    from utils.prepare import DataChoice
    from utils.train import TrainConfig

PathLike = str | os.PathLike

DEFAULT_MINUTES = 14.0  # the whole demo, data generation and evaluation included
EVALUATION_RESERVE_MINUTES = 0.5  # kept free after training for scores, grids and curves
GRID_FACES = 6  # faces per round-trip grid


@dataclass(frozen=True)
class DemoSettings:
    """Everything the demo trains with; `DEMO` for `make demo`, `FAST` for the tests and CI."""

    synthetic_count: int | None  # faces generated when no real CelebA is found (None: prepare's default)
    test_count: int  # faces held out per domain, never trained on
    image_size: int
    num_features: int  # generator width (chapter: 64)
    num_residuals: int  # generator residual blocks (chapter: 9)
    disc_features: tuple[int, ...]  # discriminator widths (chapter: 64, 128, 256, 512)
    batch_size: int
    iterations: int
    lr: float
    betas: tuple[float, float]
    lambda_cycle: float
    lambda_identity: float
    pool_size: int
    decay_start: float | None  # share of the iterations after which the lr falls linearly to 0
    generator: str = "chapter"  # extra code – beyond the chapter: ch06util.GENERATOR_VARIANTS


# Measured with benchmarks/demo_frontier.py and the throughput runs in benchmarks/README.md
# (2-core Xeon, torch 2.14 CPU). Why each value differs from the chapter's:
# * 64 px, generator 16 wide with 4 residual blocks, discriminator (16, 32, 64, 128): on a CPU
#   an iteration costs roughly pixels x width^2; these sizes train ~23 pairs/s on 2 idle cores
#   (a 32-wide generator with the chapter's 2x discriminator: ~8-10 pairs/s).
# * batch 8: 2-5x the pairs per second of batch 1 on a CPU (one big convolution beats eight).
# * lr 2e-4 (the paper's; the chapter's 1e-5 barely moves in 15 minutes); 5e-4 let the
#   discriminators win (D loss ~0.01) and the translations fell apart.
# * discriminator first width = generator width (the chapter's ratio, 64/64): with a 2x wider
#   one (32) the discriminator loss fell to ~0.04 within 600 iterations and it won.
# * identity loss 10 (the cycle weight; the paper uses 0.5x): the generators must keep
#   everything but the hair, which is what PSNR outside the hair measures. At 2,000 iterations
#   10 beat 20 on all four held-out numbers (0.87 / 21.7 dB and 0.63 / 19.4 dB against
#   0.83 / 21.2 and 0.50 / 18.8; one run each); 40 stopped the hair from changing.
# * lr decay over the last 40% (the paper's recipe, shortened): the GAN noise settles; both
#   directions gained 1-2 dB while it ran in the frontier run (not isolated from more training).
# * 2,000 faces, 100 per domain held out: enough for 90%+ to mean something on unseen faces.
# Tried and not better per CPU-minute (a float32 sweep on a GPU standing in for the CPU):
# 32 or 48 px, 2 residual blocks, a 24-wide generator at
# 32 px, batch 16, and a copy-only warm-up of the generators.
# * generator "no_first_norm" (extra code – beyond the chapter): the chapter's generator cannot
#   see an image's overall colour (its first InstanceNorm removes it), so every output's colour
#   is a guess. Without that one norm it won on all four held-out numbers for both seeds
#   (benchmarks/README.md, "A generator that can see colour"); the notebooks keep the chapter's.
DEMO = DemoSettings(
    synthetic_count=2000, test_count=100, image_size=64, num_features=16, num_residuals=4,
    disc_features=(16, 32, 64, 128), batch_size=8, iterations=2000, lr=2e-4, betas=(0.5, 0.999),
    lambda_cycle=10.0, lambda_identity=10.0, pool_size=0, decay_start=0.6, generator="no_first_norm",
)
# Seconds end to end on a CPU: enough to run every step and write every file.
FAST = DemoSettings(
    synthetic_count=None, test_count=10, image_size=32, num_features=8, num_residuals=1,
    disc_features=(8, 16, 32, 64), batch_size=2, iterations=4, lr=2e-4, betas=(0.5, 0.999),
    lambda_cycle=10.0, lambda_identity=5.0, pool_size=0, decay_start=None, generator=DEMO.generator,
)

# What `utils.train` writes into a run folder; a folder holding only these is a previous demo run.
_RUN_FILES = frozenset({"checkpoint.pt", "checkpoint.prev.pt", "gen_black.pth", "gen_blond.pth",
                        "history.csv", "samples"})


def settings_for(fast: bool, iterations: int | None = None) -> DemoSettings:
    """`DEMO` or `FAST`, with the number of iterations overridden when given."""
    settings = FAST if fast else DEMO
    if iterations is not None:
        if iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations}.")
        settings = replace(settings, iterations=iterations)
    return settings


def _fresh_run_folder(run: Path) -> None:
    """Empty `run` of a previous demo's files; refuse if it holds anything the demo did not write."""
    if not run.exists():
        return
    foreign = sorted(p.name for p in run.iterdir() if p.name not in _RUN_FILES)
    if foreign:
        raise FileExistsError(
            f"{run} holds files the demo did not write ({', '.join(foreign[:5])}). "
            "Move them elsewhere or pass another --out folder."
        )
    for entry in run.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _save_grids(gen_A: torch.nn.Module, gen_B: torch.nn.Module, folders: dict[str, tuple[Path, Path]],
                out: Path, image_size: int) -> list[Path]:
    """One PNG per set of faces: rows black / blond / black again, then blond / black / blond again."""
    import matplotlib.pyplot as plt

    from utils.inference import load_batch, round_trip
    from utils.show import show_rows

    written = []
    for name, (folder_A, folder_B) in folders.items():
        black = load_batch(folder_A, GRID_FACES, image_size)
        blond = load_batch(folder_B, GRID_FACES, image_size)
        fake_blond, black_again = round_trip(gen_B, gen_A, black)
        fake_black, blond_again = round_trip(gen_A, gen_B, blond)
        path = out / f"round_trip_{name}.png"
        fig = show_rows([black, fake_blond, black_again, blond, fake_black, blond_again],
                        ["black", "→ blond", "→ black again", "blond", "→ black", "→ blond again"],
                        save_to=path, title=f"Round trips, {name.replace('_', '-')} faces")
        plt.close(fig)
        written.append(path)
    return written


def train_options(settings: DemoSettings) -> dict[str, Any]:
    """The `utils.train.TrainConfig` fields that `settings` fix (sizes, optimiser, losses, schedule).

    One mapping for the demo and the notebooks' built-in runs (`utils.notebook.BUILTIN`), so
    the two cannot drift apart.
    """
    return dict(
        image_size=settings.image_size, batch_size=settings.batch_size, iterations=settings.iterations,
        lr=settings.lr, betas=settings.betas, lambda_cycle=settings.lambda_cycle,
        lambda_identity=settings.lambda_identity, pool_size=settings.pool_size,
        decay_from=None if settings.decay_start is None else int(settings.decay_start * settings.iterations),
        num_features=settings.num_features, num_residuals=settings.num_residuals,
        disc_features=settings.disc_features, generator=settings.generator,
    )


def train_config(settings: DemoSettings, data: DataChoice, run: PathLike, *, minutes: float | None,
                 seed: int = 0, device: str | torch.device | None = None) -> TrainConfig:
    """The `utils.train` configuration of the demo: the chapter's networks and losses at `settings`."""
    from utils.train import TrainConfig

    return TrainConfig(
        domain_a=data.domain_A, domain_b=data.domain_B, out=run, minutes=minutes, **train_options(settings),
        checkpoint_every=max(1, settings.iterations // 4), sample_every=max(1, settings.iterations // 8),
        seed=seed, device=None if device is None else str(device),
    )


def choose_cpu_threads(config: TrainConfig) -> int:
    """(extra code) The faster of PyTorch's default thread count and one, timed on this run's networks.

    Throw-away networks and random batches at the run's sizes: `utils.train.train` seeds itself
    afterwards, so the run's results do not depend on this probe (see `speed.pick_cpu_threads`).
    """
    from torch import nn

    from utils import speed
    from utils.ch06util import make_grad_scaler, train_step
    from utils.train import _build_networks, _build_optimizers

    cpu = torch.device("cpu")
    nets = _build_networks(config, cpu)
    opt_disc, opt_gen = _build_optimizers(config, nets)
    scalers = make_grad_scaler(cpu), make_grad_scaler(cpu)
    A, B = (torch.rand(config.batch_size, 3, config.image_size, config.image_size) * 2 - 1 for _ in "AB")

    def step() -> None:
        train_step(A, B, nets["disc_A"], nets["disc_B"], nets["gen_A"], nets["gen_B"], opt_disc, opt_gen,
                   nn.L1Loss(), nn.MSELoss(), *scalers, lambda_cycle=config.lambda_cycle,
                   lambda_identity=config.lambda_identity)

    return speed.pick_cpu_threads(step)


def demo_data(settings: DemoSettings, seed: int = 0) -> DataChoice:
    """The real CelebA download in files/ if there is one, else the synthetic faces; split, held out."""
    from utils.prepare import ensure_data

    data = ensure_data("celeba", synthetic_count=settings.synthetic_count, test_count=settings.test_count,
                       seed=seed)
    if data.test_A is None or data.test_B is None:
        raise RuntimeError(f"No held-out faces were split off in {data.root}; the demo needs them to score.")
    return data


def run_demo(out: PathLike | None = None, *, minutes: float = DEFAULT_MINUTES, iterations: int | None = None,
             seed: int = 0, device: str | torch.device | None = None, fast: bool | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Data, training, scores and pictures in one call; returns what `metrics.json` holds.

    `minutes` caps the whole demo (data generation and evaluation included); training stops
    at `iterations` (default: the settings') or when the cap would be passed, whichever comes
    first. `fast` (default: `CH06_FAST`) shrinks everything so the demo runs in seconds.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: the demo may run where there is no display
    import matplotlib.pyplot as plt

    from utils.evaluate import format_table, score_held_out, write_json
    from utils.runtime import describe, fast_mode, pick_device
    from utils.show import plot_history
    from utils.train import train

    started = time.monotonic()
    if minutes <= EVALUATION_RESERVE_MINUTES:
        raise ValueError(f"--minutes {minutes:g} leaves no time to train: give more than "
                         f"{EVALUATION_RESERVE_MINUTES:g} (the default is {DEFAULT_MINUTES:g}).")
    fast = fast_mode() if fast is None else fast
    settings = settings_for(fast, iterations)
    out = Path(out) if out is not None else files_dir() / "demo"
    device = pick_device(str(device) if device is not None else None)
    print(f"CycleGAN demo: {describe(device)}")

    data = demo_data(settings, seed)

    out.mkdir(parents=True, exist_ok=True)
    run = out / "run"
    _fresh_run_folder(run)
    spent = (time.monotonic() - started) / 60
    train_minutes = minutes - spent - EVALUATION_RESERVE_MINUTES
    if train_minutes <= 0:
        raise ValueError(f"--minutes {minutes} leaves no time to train: preparing the data took "
                         f"{spent:.1f} min. Give more minutes.")
    config = train_config(settings, data, run, minutes=train_minutes, seed=seed, device=device)
    if torch.device(device).type == "cpu":
        default = torch.get_num_threads()
        print(f"CPU threads: {choose_cpu_threads(config)} (the faster of {default} and 1 here, timed "
              "over a few steps: a busy core makes two threads wait for each other)")
    print(f"Training {settings.iterations:,} iterations of {settings.batch_size} pairs at "
          f"{settings.image_size} px for at most {train_minutes:.1f} min ...")
    if settings.generator != "chapter":  # extra code – say so whenever the demo leaves the chapter
        print(f"Generator variant {settings.generator!r}, beyond the chapter: the chapter's generator "
              "cannot see an image's overall colour (README, \"What `make demo` shows\").")
    result = train(config, progress=progress)
    trained_minutes = float(result.history["seconds"].iloc[-1]) / 60 if len(result.history) else 0.0

    gens = (result.gen_A, result.gen_B)
    scores, scored_by = score_held_out(*gens, data, settings.image_size, device=device, seed=seed)

    grids = _save_grids(*gens, {"training": (data.domain_A, data.domain_B),
                                "held_out": (data.test_A, data.test_B)}, out, settings.image_size)
    curves = out / "loss_curves.png"
    ax = plot_history(result.history, window=max(1, min(25, len(result.history) // 10 or 1)), save_to=curves)
    plt.close(ax.figure)

    total_minutes = (time.monotonic() - started) / 60
    metrics: dict[str, Any] = {
        **scores,
        "minutes": round(total_minutes, 2),
        "training_minutes": round(trained_minutes, 2),
        "iterations": result.iteration,
        "stopped_by": result.reason,
        "device": describe(device),
        "data": "real CelebA" if data.real else "synthetic faces",
        "scored_by": scored_by,
        "settings": {**asdict(settings), "seed": seed, "minutes_cap": minutes},
    }
    metrics_path = out / "metrics.json"
    write_json(metrics, metrics_path)

    print(f"\nScores on the held-out faces, {scored_by}:")
    print(format_table(scores))
    print(f"{result.iteration:,} iterations ({result.reason}) in {trained_minutes:.1f} min of training, "
          f"{total_minutes:.1f} min in total.")
    print("Wrote:")
    for path in (*grids, curves, metrics_path, result.paths["gen_black"], result.paths["gen_blond"]):
        print(f"  {path}")
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of `make demo`."""
    parser = argparse.ArgumentParser(prog="python -m utils.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                        help=f"cap on the whole demo, data and scores included (default {DEFAULT_MINUTES:g})")
    parser.add_argument("--iterations", type=int, help=f"training iterations (default {DEMO.iterations:,})")
    parser.add_argument("--out", help="output folder (default files/demo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="cpu, cuda, mps (default: the fastest present)")
    args = parser.parse_args(argv)
    run_demo(args.out, minutes=args.minutes, iterations=args.iterations, seed=args.seed, device=args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
