"""`make demo`: one command that shows the chapter's CycleGAN learning, with numbers to prove it.

(Extra code – not in the book.) On a fresh machine, with nothing downloaded, it

1. generates the built-in synthetic faces (or uses the real CelebA download in `files/`),
2. splits them with the chapter's rule, holding faces out of training (`utils.prepare.ensure_data`),
3. trains the chapter's `Generator`/`Discriminator` pair in both directions with the chapter's
   losses (`utils.train.train`) for a fixed, seeded number of iterations (the same run on any
   machine; after a few iterations it prints how long the whole run takes on this one),
4. scores the held-out faces against the ground-truth renders (`utils.evaluate`), and
5. writes round-trip grids, the loss curves and `metrics.json` to `files/demo/`.

Why the settings differ from the chapter's (256 px, 64 wide, 9 blocks, batch 1, lr 1e-5,
one epoch of 48,472 iterations): that recipe needs hours on a GPU. The demo should finish in
about 15 minutes on a 2-core laptop CPU, so it keeps the architecture and the losses and
shrinks the sizes; see `DEMO` and benchmarks/demo_frontier.py for the measurements behind
each choice. `--minutes M` caps the training time on a slow machine; a run it stops early
says so in its summary and in `metrics.json` (its scores are below the full run's).

`DemoSettings` is the settings type of every run the project starts: `make demo` (`DEMO`),
the notebooks (`utils.notebook`) and `python -m utils.train --preset demo` all build their
`TrainConfig` through `train_options` / `train_config` here.

    python -m utils.demo [--iterations N] [--minutes M] [--out DIR] [--seed 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from utils.cli import SettingError, UserError, command
from utils.paths import files_dir

if TYPE_CHECKING:
    from utils.prepare import DataChoice
    from utils.train import TrainConfig

PathLike = str | os.PathLike

GRID_FACES = 6  # faces per round-trip grid


@dataclass(frozen=True)
class DemoSettings:
    """Everything a run trains with: `DEMO` for `make demo`, `FAST` for the tests and CI, and
    the notebooks' sizes (`utils.notebook.CHAPTER`, `BUILTIN`, `FAST`).

    One type, turned into a `utils.train.TrainConfig` in one place (`train_config`), which
    also checks every training setting (`TrainConfig` says the allowed range); the two data
    counts are checked here.
    """

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

    def __post_init__(self) -> None:
        if self.synthetic_count is not None and self.synthetic_count < 0:
            raise SettingError(f"synthetic_count must be at least 0 (or None), got {self.synthetic_count}.")
        if self.test_count < 0:
            raise SettingError(f"test_count must be at least 0, got {self.test_count}.")
        train_config(self, "A", "B", "run")  # raises SettingError for a training setting out of range


def train_options(settings: DemoSettings) -> dict[str, Any]:
    """The `utils.train.TrainConfig` fields that `settings` fix (sizes, optimiser, losses, schedule).

    The one mapping from settings to a training run: the demo, the notebooks and the CLI's
    `--preset demo` all go through it, so they cannot drift apart.
    """
    return dict(
        image_size=settings.image_size, batch_size=settings.batch_size, iterations=settings.iterations,
        lr=settings.lr, betas=settings.betas, lambda_cycle=settings.lambda_cycle,
        lambda_identity=settings.lambda_identity, pool_size=settings.pool_size,
        decay_from=settings.decay_start,  # a share of the run: the last 40% for 0.6
        num_features=settings.num_features, num_residuals=settings.num_residuals,
        disc_features=settings.disc_features, generator=settings.generator,
    )


def train_config(settings: DemoSettings, domain_a: PathLike | Sequence[PathLike],
                 domain_b: PathLike | Sequence[PathLike], out: PathLike, **overrides: Any) -> TrainConfig:
    """The `utils.train` configuration of a run at `settings`: the chapter's networks and losses.

    `overrides` are further TrainConfig fields (seed, device, minutes, resume, ...) and win;
    `preset="paper"` (or "chapter") lays a preset between the settings and the overrides.
    """
    from utils.train import TrainConfig, preset_options

    preset = overrides.pop("preset", None)
    if overrides.get("device") is not None:
        overrides["device"] = str(overrides["device"])
    its = settings.iterations
    return TrainConfig(
        domain_a=domain_a, domain_b=domain_b, out=out,
        **{**train_options(settings),
           "checkpoint_every": min(2000, max(1, its // 4)), "sample_every": min(500, max(1, its // 8)),
           **(preset_options(preset) if preset else {}), **overrides},
    )


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

# The demo marks each run folder it makes with this file, and replaces a run folder only if
# the file is there (and nothing but what `utils.train` writes): a reader's own run in the
# same place is never touched, whatever its files are called.
MARKER = "MADE_BY_DEMO.txt"
_RUN_FILES = frozenset({"checkpoint.pt", "checkpoint.prev.pt", "checkpoint.damaged.pt", "gen_black.pth",
                        "gen_blond.pth", "history.csv", "samples", MARKER})


def settings_for(fast: bool, iterations: int | None = None) -> DemoSettings:
    """`DEMO` or `FAST`, with the number of iterations overridden when given (and checked)."""
    settings = FAST if fast else DEMO
    if iterations is not None:
        settings = replace(settings, iterations=iterations)
    return settings


def _fresh_run_folder(run: Path) -> None:
    """An empty `run` folder, marked as the demo's. A previous demo run there (marked, holding
    only what `utils.train` writes) is replaced; anything else is refused and left as it is."""
    entries = list(run.iterdir()) if run.exists() else []
    if entries:
        if not (run / MARKER).is_file():
            raise FileExistsError(
                f"{run} holds a run or files the demo did not make (it has no {MARKER}), so the "
                "demo leaves it alone. Pass another --out folder, or move that folder elsewhere."
            )
        foreign = sorted(p.name for p in entries if p.name not in _RUN_FILES)
        if foreign:
            raise FileExistsError(
                f"{run} holds files the demo did not write ({', '.join(foreign[:5])}). "
                "Move them elsewhere or pass another --out folder."
            )
        for entry in entries:
            if entry.name != MARKER:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    run.mkdir(parents=True, exist_ok=True)
    (run / MARKER).write_text(
        "This run folder was made by `make demo` (python -m utils.demo), which replaces it on its next\n"
        "run. To keep this run, move the folder elsewhere, or delete this file: the demo then leaves\n"
        "the folder alone.\n", encoding="utf-8")


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
        raise UserError(f"No held-out faces were split off in {data.root}; the demo needs them to score. "
                        "Split again with held-out faces (python -m utils.prepare split celeba "
                        "--test-count 100).")
    return data


def _stop_note(reason: str, done: int, planned: int, minutes: float | None) -> str | None:
    """The plain sentence a run stopped early gets in the summary and metrics.json; None if complete."""
    if done >= planned:
        return None
    why = {"minutes": f"the --minutes {minutes:g} cap" if minutes is not None else "the time cap",
           "interrupted": "interrupted", "callback": "stopped by a callback"}.get(reason, reason)
    return (f"stopped at {done:,} of {planned:,} iterations ({why}): scores are below what the full "
            "run gets.")


def run_demo(out: PathLike | None = None, *, minutes: float | None = None, iterations: int | None = None,
             seed: int = 0, device: str | torch.device | None = None, fast: bool | None = None,
             progress: bool = True, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Data, training, scores and pictures in one call; returns what `metrics.json` holds.

    Training runs `iterations` (default: the settings'), a fixed seeded run, so every machine
    gets the same result, only sooner or later; `minutes` optionally caps the training time
    (then the summary and metrics.json say that the run stopped early). `fast` (default:
    `CH06_FAST`) shrinks everything so the demo runs in seconds. `clock` times the training
    (tests pass a fake one).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: the demo may run where there is no display
    import matplotlib.pyplot as plt

    from utils.evaluate import format_table, score_held_out, write_json
    from utils.runtime import describe, fast_mode, pick_device
    from utils.show import plot_history
    from utils.train import train

    started = time.monotonic()
    fast = fast_mode() if fast is None else fast
    settings = settings_for(fast, iterations)
    # the settings were checked when made; this checks --minutes, the one value given here, before any work
    train_config(settings, "A", "B", "run", minutes=minutes)
    out = Path(out) if out is not None else files_dir() / "demo"
    device = pick_device(str(device) if device is not None else None)
    print(f"CycleGAN demo: {describe(device)}")

    run = out / "run"
    _fresh_run_folder(run)  # before any work: a folder the demo may not replace is refused at once
    data = demo_data(settings, seed)

    config = train_config(settings, data.domain_A, data.domain_B, run, minutes=minutes, seed=seed,
                          device=device)
    if torch.device(device).type == "cpu":
        default = torch.get_num_threads()
        print(f"CPU threads: {choose_cpu_threads(config)} (the faster of {default} and 1 here, timed "
              "over a few steps: a busy core makes two threads wait for each other)")
    cap = f", stopping after {minutes:g} min at most" if minutes is not None else ""
    print(f"Training {settings.iterations:,} iterations of {settings.batch_size} pairs at "
          f"{settings.image_size} px (a fixed, seeded run: the same result on any machine){cap}. "
          "The time it takes here follows after a few iterations.")
    if settings.generator != "chapter":  # extra code – say so whenever the demo leaves the chapter
        print(f"Generator variant {settings.generator!r}, beyond the chapter: the chapter's generator "
              "cannot see an image's overall colour (README, \"What `make demo` shows\").")
    result = train(config, progress=progress, clock=clock)
    trained_minutes = float(result.history["seconds"].iloc[-1]) / 60 if len(result.history) else 0.0
    note = _stop_note(result.reason, result.iteration, settings.iterations, minutes)

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
        "iterations_planned": settings.iterations,
        "complete": note is None,
        **({"note": note} if note else {}),
        "stopped_by": result.reason,
        "device": describe(device),
        "data": "real CelebA" if data.real else "synthetic faces",
        "scored_by": scored_by,
        "settings": {**asdict(settings), "seed": seed, "minutes_cap": minutes},
    }
    if result.skipped_images:
        metrics["skipped_images"] = result.skipped_images
    metrics_path = out / "metrics.json"
    write_json(metrics, metrics_path)

    print(f"\nScores on the held-out faces, {scored_by}:")
    print(format_table(scores))
    if note:
        print(f"Note: {note}")
    print(f"{result.iteration:,} iterations ({result.reason}) in {trained_minutes:.1f} min of training, "
          f"{total_minutes:.1f} min in total.")
    print("Wrote:")
    for path in (*grids, curves, metrics_path, result.paths["gen_black"], result.paths["gen_blond"]):
        print(f"  {path}")
    return metrics


@command
def main(argv: Sequence[str] | None = None) -> int:
    """Command line of `make demo`; a reader's mistake ends in one line and exit code 2."""
    parser = argparse.ArgumentParser(prog="python -m utils.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, help=f"training iterations (default {DEMO.iterations:,})")
    parser.add_argument("--minutes", type=float,
                        help="stop training after M minutes even if the iterations are not done "
                             "(default: no cap; the summary then says the run stopped early)")
    parser.add_argument("--out", help="output folder (default files/demo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="cpu, cuda, mps (default: the fastest present)")
    args = parser.parse_args(argv)
    run_demo(args.out, minutes=args.minutes, iterations=args.iterations, seed=args.seed, device=args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
