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

The settings of every run the project starts (`DEMO`, `FAST`, `RunSettings`, alias
`DemoSettings`, `train_options`, `train_config`, `settings_for`) live in `utils.settings`;
they are re-exported here for the benchmarks and readers that import them from the demo.

    python -m utils.demo [--iterations N] [--minutes M] [--out DIR] [--seed 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from utils.cli import Terminated, UserError, command
from utils.locks import OUTPUT_LOCK, hold
from utils.ownership import OwnedFiles, output_folder, refuse_foreign
from utils.paths import files_dir
from utils.run_loop import choose_cpu_threads, train
from utils.settings import (
    DEMO,
    DEMO_GENERATOR_WHY,
    FAST,
    DemoSettings,
    RunSettings,
    settings_for,
    train_config,
    train_options,
)

if TYPE_CHECKING:
    from utils.prepare import DataChoice

__all__ = ["DEMO", "FAST", "GRID_FACES", "MARKER", "DemoSettings", "RunSettings", "choose_cpu_threads",
           "demo_data", "main", "run_demo", "settings_for", "train_config", "train_options"]

PathLike = str | os.PathLike

GRID_FACES = 6  # faces per round-trip grid


# The demo marks each run folder it makes with this file (and records it as its own,
# `utils.ownership`), and replaces a run folder only if the file is there and everything else
# in it is what `utils.train` wrote: a reader's own run in the same place is never touched,
# whatever its files are called.
MARKER = "MADE_BY_DEMO.txt"
OWNER = "utils.demo"  # how the files the demo writes are marked (utils.ownership)
_RUN_FILES = frozenset({"checkpoint.pt", "checkpoint.prev.pt", "checkpoint.damaged.pt", "gen_black.pth",
                        "gen_blond.pth", "history.csv", "samples", MARKER})
GRIDS = ("training", "held_out")  # round_trip_<name>.png in --out
CURVES, METRICS = "loss_curves.png", "metrics.json"
DEMO_FILES = (*(f"round_trip_{name}.png" for name in GRIDS), CURVES, METRICS)  # what it writes in --out


def _fresh_run_folder(run: Path) -> None:
    """An empty `run` folder, marked as the demo's. A previous demo run there (marked, holding
    only what `utils.train` wrote) is replaced; anything else is refused and left as it is.
    The folder's lock and record (`.ch06-*`, hidden) are the project's and stay."""
    entries = [p for p in run.iterdir() if not p.name.startswith(".ch06-")] if run.exists() else []
    if entries:
        record = OwnedFiles.load(run)
        marked = (run / MARKER).is_file() and (not record.found or record.owns(MARKER, OWNER))
        if not marked:
            raise FileExistsError(
                f"{run} holds a run or files the demo did not make (it has no {MARKER} of its own), so "
                "the demo leaves it alone. Pass another --out folder, or move that folder elsewhere."
            )
        foreign = sorted(p.name for p in entries if p.name not in _RUN_FILES)
        if record.found:  # a file of the run's names that a reader put there since
            written = [p.name for p in entries if p.is_file() and p.name != MARKER]
            samples = run / "samples"
            if samples.is_dir():
                written += [f"samples/{p.name}" for p in samples.iterdir() if not p.name.startswith(".")]
            foreign += record.foreign(written, {"utils.train", OWNER})
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
    record = OwnedFiles.load(run)
    record.claim(MARKER, OWNER)
    record.save()


def _save_grids(gen_A: torch.nn.Module, gen_B: torch.nn.Module, folders: dict[str, tuple[Path, Path]],
                out: Path, image_size: int) -> list[Path]:
    """One PNG per set of faces, each round trip read left to right (original, translated, back;
    with a mask variant, the mask of where it edited before "back"): the black-haired faces
    first, then the blond ones."""
    import matplotlib.pyplot as plt

    from utils.inference import load_batch, round_trip_stages
    from utils.show import show_round_trips

    written = []
    for name, (folder_A, folder_B) in folders.items():
        labels = ("original", "translated", "back")
        black, blond = (load_batch(folder, GRID_FACES, image_size) for folder in (folder_A, folder_B))
        to_blond, titles = round_trip_stages(gen_B, gen_A, black, labels)
        to_black, _ = round_trip_stages(gen_A, gen_B, blond, labels)
        path = out / f"round_trip_{name}.png"  # one of DEMO_FILES
        fig = show_round_trips([torch.cat(pair) for pair in zip(to_blond, to_black, strict=True)], titles,
                               faces_per_row=2, save_to=path,
                               title=f"Round trips, {name.replace('_', '-')} faces: "
                                     "black → blond → black, then blond → black → blond")
        plt.close(fig)
        written.append(path)
    return written


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


# extra code – the README's figures for `make demo` (the 'mask' generator, 2,000 iterations, one
# thread each, Intel Sapphire Rapids Xeon), per precision and direction: (mean, half the range)
# over seeds 0 and 1 of the hair accuracy and the PSNR outside the hair. The summary
# compares a run with the row of its precision; tests/test_demo.py checks that README.md shows these
# numbers (benchmarks/README.md, "A generator that edits only where it must", has the runs).
Spread = dict[str, tuple[float, float]]
DEMO_REFERENCE: dict[str, dict[str, Spread]] = {
    "float32": {"black_to_blond": {"hair_accuracy": (0.99, 0.0), "psnr_outside_hair": (77.13, 2.15)},
                "blond_to_black": {"hair_accuracy": (0.995, 0.005), "psnr_outside_hair": (74.05, 0.52)}},
    "bfloat16": {"black_to_blond": {"hair_accuracy": (0.99, 0.0), "psnr_outside_hair": (73.43, 1.64)},
                 "blond_to_black": {"hair_accuracy": (1.00, 0.0), "psnr_outside_hair": (69.74, 1.0)}},
}
DIRECTIONS = {"black_to_blond": "black → blond", "blond_to_black": "blond → black"}
DIGITS = {"hair_accuracy": 2, "psnr_outside_hair": 1}  # as the README shows them


def reference_cells(precision: str) -> list[str]:
    """The README row's four cells for `precision`: accuracy and PSNR, black → blond then blond → black."""
    row = DEMO_REFERENCE[precision]
    return [f"{mean:.{DIGITS[metric]}f} ± {half:.{DIGITS[metric]}f}"
            for direction in DIRECTIONS for metric, (mean, half) in row[direction].items()]


def compare_with_readme(scores: dict[str, dict[str, float]], precision: str) -> str:
    """One line: a full demo run's held-out numbers against the README's row for its precision.

    The README's rows span two seeds; a run with the demo's seed on a machine that trains in
    the same precision reproduces one end of its row, so a number outside says this run differs.
    Both are compared at the digits the README prints.
    """
    if precision not in DEMO_REFERENCE:
        return f"The README has no figures for {precision}; compare with its float32 row."
    cells = iter(reference_cells(precision))
    expected = [f"{label} {next(cells)}, {next(cells)} dB" for label in DIRECTIONS.values()]
    outside = []
    for direction, label in DIRECTIONS.items():
        for metric, (mean, half) in DEMO_REFERENCE[precision][direction].items():
            d, value = DIGITS[metric], scores[direction][metric]
            low, high = round(mean - half, d), round(mean + half, d)  # as the README prints them
            if not low - 1e-9 <= round(value, d) <= high + 1e-9:
                outside.append(f"{label} {metric} {value:.{d}f} (README {low:.{d}f}–{high:.{d}f})")
    verdict = ("all four match the 2 seeds' range" if not outside
               else "outside the 2 seeds' range: " + "; ".join(outside))
    return f"README, {precision} (seeds 0 and 1): {'; '.join(expected)}. This run: {verdict}."


def _stop_note(reason: str, done: int, planned: int, minutes: float | None) -> str | None:
    """The plain sentence a run stopped early gets in the summary and metrics.json; None if complete."""
    if done >= planned:
        return None
    why = {"minutes": f"the --minutes {minutes:g} cap" if minutes is not None else "the time cap",
           "interrupted": "interrupted", "terminated": "terminated (SIGTERM)",
           "callback": "stopped by a callback"}.get(reason, reason)
    return (f"stopped at {done:,} of {planned:,} iterations ({why}): scores are below what the full "
            "run gets.")


def run_demo(out: PathLike | None = None, *, minutes: float | None = None, iterations: int | None = None,
             seed: int = 0, device: str | torch.device | None = None, fast: bool | None = None,
             progress: bool = True, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Data, training, scores and pictures in one call; returns what `metrics.json` holds.

    Training runs `iterations` (default: the settings'), a fixed seeded run, so every machine
    trains the same run, only sooner or later (its scores agree within the spread between
    seeds: rounding differs between CPUs and thread counts); `minutes` optionally caps the training time
    (then the summary and metrics.json say that the run stopped early). `fast` (default:
    `CH06_FAST`) shrinks everything so the demo runs in seconds. `clock` times the training
    (tests pass a fake one).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: the demo may run where there is no display

    from utils.runtime import describe, fast_mode, pick_device

    started = time.monotonic()
    fast = fast_mode() if fast is None else fast
    settings = settings_for(fast, iterations)
    # the settings were checked when made; this checks --minutes, the one value given here, before any work
    train_config(settings, "A", "B", "run", minutes=minutes)
    out = output_folder(out if out is not None else files_dir() / "demo", "--out", create=False)
    device = pick_device(str(device) if device is not None else None)
    print(f"CycleGAN demo: {describe(device)}")

    run = out / "run"
    advice = "pass another --out folder"
    with hold(out, OUTPUT_LOCK, advice=advice), hold(run, OUTPUT_LOCK, advice=advice):  # one demo per folder
        # before any work: files the demo may not replace are refused at once
        refuse_foreign(out, DEMO_FILES, OWNER, fix="Pass another --out folder, or move those files "
                                                   "elsewhere.")
        _fresh_run_folder(run)
        return _train_and_report(out, run, settings, minutes, seed, device, progress, clock, started)


def _train_and_report(out: Path, run: Path, settings: RunSettings, minutes: float | None, seed: int,
                      device: torch.device, progress: bool, clock: Callable[[], float], started: float
                      ) -> dict[str, Any]:
    """`run_demo` once its folders are locked and checked: data, training, scores, pictures."""
    import matplotlib.pyplot as plt

    from utils.evaluate import format_table, score_held_out, write_json
    from utils.runtime import describe
    from utils.show import plot_history

    data = demo_data(settings, seed)

    config = train_config(settings, data.domain_A, data.domain_B, run, minutes=minutes, seed=seed,
                          device=device)
    cap = f", stopping after {minutes:g} min at most" if minutes is not None else ""
    print(f"Training {settings.iterations:,} iterations of {settings.batch_size} pairs at "
          f"{settings.image_size} px (a fixed, seeded run: the same run on any machine that trains in the "
          f"same precision, with results that agree within the spread between seeds){cap}. An estimate "
          "of the time it takes here follows after a few iterations.")
    if settings.generator != "chapter":  # extra code – say so whenever the demo leaves the chapter
        why = f": {DEMO_GENERATOR_WHY}" if settings.generator == DEMO.generator else ""
        print(f"Generator variant {settings.generator!r}, beyond the chapter{why}.")
    result = train(config, progress=progress, clock=clock)
    if result.reason == "terminated":  # SIGTERM: the machine is going down; the checkpoint is saved
        raise Terminated
    trained_minutes = float(result.history["seconds"].iloc[-1]) / 60 if len(result.history) else 0.0
    note = _stop_note(result.reason, result.iteration, settings.iterations, minutes)

    gens = (result.gen_A, result.gen_B)
    scores, scored_by = score_held_out(*gens, data, settings.image_size, device=device, seed=seed)

    grids = _save_grids(*gens, dict(zip(GRIDS, ((data.domain_A, data.domain_B), (data.test_A, data.test_B)),
                                        strict=True)), out, settings.image_size)
    curves = out / CURVES
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
        "precision": result.precision,
        "precision_reason": result.precision_reason,
        "data": "real CelebA" if data.real else "synthetic faces",
        "scored_by": scored_by,
        "settings": {**asdict(settings), "seed": seed, "minutes_cap": minutes},
    }
    if result.skipped_images:
        metrics["skipped_images"] = result.skipped_images
    metrics_path = out / METRICS
    write_json(metrics, metrics_path)
    record = OwnedFiles.load(out)
    for name in DEMO_FILES:
        record.claim(name, OWNER)
    record.save()

    print(f"\nScores on the held-out faces, {scored_by}, trained in {result.precision}:")
    print(format_table(scores))
    if note:
        print(f"Note: {note}")
    elif settings == DEMO and not data.real:  # the README's figures are for this run only
        print(compare_with_readme(scores, result.precision))
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
