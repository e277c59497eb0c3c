"""How good does `make demo` get, and how fast? Held-out scores against minutes, in one run.

Runs the demo's configuration (`utils.demo.DEMO`, or overrides) through the same code path
as the demo -- `utils.prepare.ensure_data`, `utils.train.train`, `utils.evaluate.score_held_out` -- and
scores the held-out faces every `--every` iterations against the synthetic ground truth.
The scoring time is measured and left out of the minutes, so each row says what a demo
that stopped there would have reached and roughly when (the data preparation time is added
to every row; the final scoring, ~5 s, is not). Wall-clock minutes depend on the load:
the load average is printed with every row.

    python benchmarks/demo_frontier.py                      # the demo's settings
    python benchmarks/demo_frontier.py --set lr=5e-4 --set lambda_identity=20 --every 200
    python benchmarks/demo_frontier.py --iterations 3000 --out files/frontier-long
    python benchmarks/demo_frontier.py --device cuda --fp32 --minutes 4 --workers 1   # a GPU as a CPU proxy

Prints one row per checkpoint (iteration, pairs, minutes, accuracy and PSNR per
direction) and writes them to `<out>/frontier.csv`.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import add_machine_options, apply_machine_options  # noqa: E402
from utils import demo  # noqa: E402
from utils.ch06util import list_images  # noqa: E402
from utils.checkpoints import load_generator  # noqa: E402
from utils.evaluate import load_masks, score_held_out, truth_files  # noqa: E402
from utils.inference import load_images  # noqa: E402
from utils.paths import files_dir  # noqa: E402
from utils.train import GEN_BLACK, GEN_BLOND, HISTORY, TrainEvent, train  # noqa: E402


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """`key=value` strings to DemoSettings fields (values as Python literals: 5e-4, (16, 32), None)."""
    fields = {f.name for f in dataclasses.fields(demo.DemoSettings)}
    overrides = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        if key not in fields:
            raise SystemExit(f"--set {pair}: unknown setting {key!r}; choose from {sorted(fields)}.")
        try:
            overrides[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[key] = text  # e.g. decay_from=half
    return overrides


def load_generators(run: Path, settings: demo.DemoSettings) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The generators the run saved last (the chapter's gen_black/gen_blond files)."""
    gen_A, gen_B = (load_generator(run / name, num_features=settings.num_features,
                                   num_residuals=settings.num_residuals) for name in (GEN_BLACK, GEN_BLOND))
    return gen_A, gen_B


def mask_means(gen: torch.nn.Module, source_dir: Path, truth_dir: Path, image_size: int,
                device: torch.device) -> tuple[float, float] | None:
    """(extra code) A mask variant's mean mask inside and outside the hair on the held-out faces
    (None for a generator without a mask): how much of the hair it edits, and of the rest."""
    if not getattr(gen, "has_mask", False):
        return None
    sources = list_images(source_dir)
    _, mask_paths = truth_files(truth_dir, sources)
    hair = load_masks(mask_paths, image_size).to(device) >= 0.5
    with torch.no_grad():
        _, mask = gen.to(device).eval()(load_images(sources, image_size).to(device), return_mask=True)
    return float(mask[hair].mean()), float(mask[~hair].mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, help=f"default: the demo's ({demo.DEMO.iterations})")
    parser.add_argument("--every", type=int, default=200, help="iterations between scores")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a DemoSettings field (repeatable)")
    parser.add_argument("--out", help="run folder (default files/demo_frontier)")
    parser.add_argument("--seed", type=int, default=0)
    add_machine_options(parser)
    parser.add_argument("--minutes", type=float, help="stop training after this many minutes (default: none)")
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: utils.speed's choice)")
    args = parser.parse_args(argv)
    device = apply_machine_options(args)

    settings = dataclasses.replace(demo.settings_for(False, args.iterations), **parse_overrides(args.set))
    out = Path(args.out) if args.out else files_dir() / "demo_frontier"
    run = out / "run"
    print(settings)

    started = time.monotonic()
    data = demo.demo_data(settings, args.seed)
    prep_s = time.monotonic() - started
    if data.truth is None:
        raise SystemExit("The frontier needs the synthetic faces' ground truth; real CelebA is in files/.")
    demo._fresh_run_folder(run)
    config = dataclasses.replace(
        demo.train_config(settings, data.domain_A, data.domain_B, run, minutes=args.minutes, seed=args.seed,
                          device=device),
        checkpoint_every=args.every, sample_every=0, log_every=math.gcd(20, args.every),
        workers=args.workers, mixed_precision=not args.fp32)

    rows: list[dict[str, object]] = []
    scoring: list[tuple[int, float]] = []  # (iteration of the callback that scored, seconds)

    def record(iteration: int, history: pd.DataFrame, at: int) -> None:
        t = time.monotonic()
        # train()'s clock at that iteration, less the scoring that ran inside the loop before it
        clock = float(history.loc[history["iteration"] == iteration, "seconds"].iloc[0])
        train_s = clock - sum(s for when, s in scoring if when < iteration)
        gen_A, gen_B = load_generators(run, settings)
        scores, _ = score_held_out(gen_A, gen_B, data, settings.image_size, device=device, seed=args.seed)
        b2k, k2b = scores["black_to_blond"], scores["blond_to_black"]
        row = {"iteration": iteration, "pairs": iteration * settings.batch_size,
               "minutes": round((prep_s + train_s) / 60, 2),
               "acc_to_blond": b2k["hair_accuracy"], "psnr_to_blond": b2k["psnr_outside_hair"],
               "acc_to_black": k2b["hair_accuracy"], "psnr_to_black": k2b["psnr_outside_hair"],
               "cycle_l1": (b2k["cycle_l1"] + k2b["cycle_l1"]) / 2}
        # where a mask variant edits: its mask's mean on the hair and off it, per direction
        for name, gen, folder in (("to_blond", gen_B, data.test_A), ("to_black", gen_A, data.test_B)):
            means = mask_means(gen, folder, data.truth, settings.image_size, device)
            if means is not None:
                row[f"mask_hair_{name}"], row[f"mask_rest_{name}"] = means
        row["load"] = os.getloadavg()[0]
        rows.append(row)
        scoring.append((at, time.monotonic() - t))
        print("  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
              flush=True)

    def callback(event: TrainEvent) -> None:
        # train() writes a checkpoint right after the callback of a multiple of `every`, so the
        # next callback (log_every divides every) sees that checkpoint's generators.
        done = event.iteration - config.log_every
        if done > 0 and done % args.every == 0:
            record(done, pd.read_csv(run / HISTORY), event.iteration)

    result = train(config, progress=False, callback=callback)
    if not rows or rows[-1]["iteration"] != result.iteration:
        # the final checkpoint, written when train() returned
        record(result.iteration, result.history, result.iteration + 1)
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "frontier.csv", index=False)
    print(f"\nData preparation {prep_s / 60:.2f} min; scoring took {sum(s for _, s in scoring):.0f} s in all "
          "(not counted in the minutes).")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"Wrote {out / 'frontier.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
