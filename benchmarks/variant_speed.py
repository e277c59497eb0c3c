"""Seconds per training iteration of each generator variant, at the demo's sizes.

    python benchmarks/variant_speed.py --threads 1                    # every variant
    python benchmarks/variant_speed.py --variants no_first_norm mask --rounds 5

One process, the variants ALTERNATING (each round: a few iterations of each, in turn), after
an untimed warm-up, on random batches at `utils.demo.DEMO`'s sizes and losses, with the
precision a run would use here (`default_autocast_dtype`: bf16 with CH06_CPU_AMP=1 on a CPU
that computes it). Load from other processes shifts every variant of a round alike, so the
ratios to the first variant (medians over rounds) hold better than the seconds themselves.
Prints a table; asserts nothing (timings are not tests).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.common import add_machine_options, apply_machine_options  # noqa: E402
from utils.ch06util import GENERATOR_VARIANTS, default_autocast_dtype, make_grad_scaler, train_step  # noqa: E402
from utils.networks import build_networks, build_optimizers  # noqa: E402
from utils.settings import DEMO, train_config  # noqa: E402


def make_step(variant: str, device: torch.device):
    """One demo-sized training iteration of `variant` on a fixed random batch, as a callable."""
    config = train_config(dataclasses.replace(DEMO, generator=variant), "A", "B", "run", device=str(device))
    nets = build_networks(config, device)
    opt_disc, opt_gen = build_optimizers(config, nets)
    dtype = default_autocast_dtype(device)
    scalers = make_grad_scaler(device, dtype), make_grad_scaler(device, dtype)
    A, B = (torch.rand(config.batch_size, 3, config.image_size, config.image_size, device=device) * 2 - 1
            for _ in "AB")

    def step() -> None:
        train_step(A, B, nets["disc_A"], nets["disc_B"], nets["gen_A"], nets["gen_B"], opt_disc, opt_gen,
                   nn.L1Loss(), nn.MSELoss(), *scalers, autocast_dtype=dtype, **config.loss_weights())

    return step, dtype


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=[v for v in GENERATOR_VARIANTS if v != "skip"],
                        choices=GENERATOR_VARIANTS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=5, help="iterations per variant per round")
    add_machine_options(parser)
    args = parser.parse_args(argv)
    device = apply_machine_options(args)
    steps = {}
    for variant in args.variants:
        steps[variant], dtype = make_step(variant, device)
        for _ in range(2):  # warm-up, not timed
            steps[variant]()
    print(f"precision: {dtype or 'float32'}; load average {os.getloadavg()[0]:.1f} at the start")
    times: dict[str, list[float]] = {v: [] for v in args.variants}
    for _ in range(args.rounds):
        for variant, step in steps.items():
            started = time.perf_counter()
            for _ in range(args.iters):
                step()
            times[variant].append((time.perf_counter() - started) / args.iters)
    first = args.variants[0]
    print(f"{'variant':<18}{'s / iteration':>14}{'× ' + first:>22}")
    for variant in args.variants:
        ratio = statistics.median(t / f for t, f in zip(times[variant], times[first], strict=True))
        print(f"{variant:<18}{statistics.median(times[variant]):>14.3f}{ratio:>22.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
