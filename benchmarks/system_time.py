"""Where does `make demo` spend user and system (kernel) CPU time? One instrumented short run.

A reader saw `top` report about half *system* time during `make demo` on a 2-core AMD machine.
This script runs the demo's own phases -- synthetic data generation, `utils.train.train` with
the demo's settings, the held-out scoring -- and charges `resource.getrusage` user and system
seconds (all threads of the process, plus any DataLoader workers) to each phase. Inside the
training loop the calls of `utils.train` are wrapped: the training steps, the data loading
between them, sample grids, checkpoints and the rest (logging, history). Then the same
training is repeated at each thread count asked for, so the figures are ratios within one run.

    python benchmarks/system_time.py                          # 200 iterations, 1 and 2 threads
    python benchmarks/system_time.py --iterations 100 --threads-list 2 --faces 100

Linux and macOS (`resource` is POSIX); minor page faults are printed where the OS counts them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from utils import demo  # noqa: E402
from utils import train as train_mod  # noqa: E402
from utils.runtime import describe  # noqa: E402


class Ledger:
    """User/system seconds, wall seconds and minor faults per phase name."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0])
        self._open = 0  # nesting depth: only the outermost phase is charged

    @staticmethod
    def _now() -> tuple[float, float, float, float]:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return (own.ru_utime + kids.ru_utime, own.ru_stime + kids.ru_stime, time.perf_counter(),
                own.ru_minflt + kids.ru_minflt)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self._open:
            yield
            return
        self._open += 1
        before = self._now()
        try:
            yield
        finally:
            after = self._now()
            row = self.totals[name]
            for i in range(4):
                row[i] += after[i] - before[i]
            row[4] += 1
            self._open -= 1

    def wrap(self, name: str, fn: Callable) -> Callable:
        def wrapped(*args, **kwargs):
            with self.phase(name):
                return fn(*args, **kwargs)
        return wrapped

    def report(self, title: str) -> None:
        print(f"\n{title}")
        print(f"{'phase':<28}{'calls':>7}{'wall s':>9}{'user s':>9}{'sys s':>8}{'sys %':>7}{'CPU/wall':>9}"
              f"{'faults/call':>12}")
        for name, (user, system, wall, faults, calls) in self.totals.items():
            busy = user + system
            print(f"{name:<28}{calls:>7}{wall:>9.2f}{user:>9.2f}{system:>8.2f}"
                  f"{100 * system / busy if busy else 0:>7.1f}{busy / wall if wall else 0:>9.2f}"
                  f"{faults / calls:>12.0f}")


def instrumented_training(ledger: Ledger, config: train_mod.TrainConfig) -> None:
    """`utils.train.train(config)` with its steps, grids and checkpoints charged to phases; the
    rest of the call (data loading between steps, logging, history, set-up) to "training: the rest"."""
    patched = {"train_step": "training steps", "_sample_grid": "sample grids", "save_image": "sample grids",
               "_save_checkpoint": "checkpoints", "atomic_save": "checkpoints"}
    saved = {name: getattr(train_mod, name) for name in patched}
    for name, phase in patched.items():
        setattr(train_mod, name, ledger.wrap(phase, saved[name]))
    try:
        before = ledger._now()
        train_mod.train(config, progress=False)
        after = ledger._now()
    finally:
        for name, fn in saved.items():
            setattr(train_mod, name, fn)
    inner = [sum(row[i] for row in ledger.totals.values()) for i in range(4)]
    ledger.totals["training: the rest"] = [after[i] - before[i] - inner[i] for i in range(4)] + [1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--faces", type=int, default=200, help="synthetic faces generated (demo: 2,000)")
    parser.add_argument("--threads-list", default="1,2", help="torch thread counts to train with, in turn")
    args = parser.parse_args(argv)
    device = torch.device("cpu")
    print(describe(device), f"default threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")

    from utils.checkpoints import load_generator
    from utils.evaluate import score_held_out
    from utils.prepare import ensure_data

    settings = dataclasses.replace(demo.settings_for(False, args.iterations), synthetic_count=args.faces,
                                   test_count=min(demo.DEMO.test_count, args.faces // 10))
    with tempfile.TemporaryDirectory(prefix="ch06-systime-") as tmp:
        ledger = Ledger()
        with ledger.phase("data generation"):
            data = ensure_data("celeba", tmp, synthetic_count=settings.synthetic_count,
                               test_count=settings.test_count)
        ledger.report(f"{args.faces} synthetic faces (the demo makes {demo.DEMO.synthetic_count:,}):")
        for threads in (int(t) for t in args.threads_list.split(",")):
            torch.set_num_threads(threads)
            ledger = Ledger()
            run = Path(tmp) / f"run{threads}"
            config = demo.train_config(settings, data.domain_A, data.domain_B, run, minutes=None,
                                       device=device)
            instrumented_training(ledger, config)
            gens = [load_generator(run / name) for name in (train_mod.GEN_BLACK, train_mod.GEN_BLOND)]
            with ledger.phase("evaluation (held-out scores)"):
                score_held_out(*gens, data, settings.image_size, device=device)
            ledger.report(f"{args.iterations} iterations of the demo's training, torch threads {threads}, "
                          f"load {os.getloadavg()[0]:.1f}:")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
