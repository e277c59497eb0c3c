"""The training loop: `train(config)` runs (or continues) one session of a CycleGAN run.

`_Run` holds everything a checkpoint must hold and runs the session in named steps: set-up,
resume, the loop (one iteration, logs and samples, the stop decision, checkpoints), finish.
The parts it uses live in their own modules: `utils.settings` (the config), `utils.train_data`
(order of pairs, pool, lr), `utils.networks`, `utils.run_state` (checkpoints, history) and
`utils.distributed` (torchrun).
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from utils import fast_gpu, speed
from utils.ch06util import (
    LOSS_KEYS,
    Precision,
    autocast,
    make_grad_scaler,
    make_transform,
    pick_precision,
    train_step,
)
from utils.checkpoints import atomic_save
from utils.cli import Terminated
from utils.distributed import (
    UNDER_TORCHRUN,
    Dist,
    agree,
    gather,
    main_rank_lock,
    setup_distributed,
    wrap_distributed,
)
from utils.networks import build_networks, build_optimizers
from utils.ownership import output_folder
from utils.run_record import reconcile, record
from utils.run_state import (
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    GEN_BLACK,
    GEN_BLOND,
    HISTORY,
    HISTORY_COLUMNS,
    PREVIOUS_CHECKPOINT,
    SAMPLES,
    History,
    claim,
    load_latest_checkpoint,
    refuse_foreign_outputs,
    remove_stale_temporaries,
    restore,
    rng_state,
    save_checkpoint,
    seed_everything,
)
from utils.settings import TrainConfig
from utils.train_data import (
    ImagePool,
    PairItems,
    ResumableSampler,
    SeededPairs,
    check_same_data,
    check_two_domains,
    learning_rate,
    resolve_decay,
    total_iterations,
)


@dataclass
class TrainEvent:
    """What `callback` receives every `log_every` iterations and at every sample grid."""

    iteration: int
    epoch: int
    losses: dict[str, float]
    lr: float
    grid: torch.Tensor | None = None  # (3, H, W) in [0, 1] on the CPU, when a sample was made
    sample_path: Path | None = None


@dataclass
class TrainResult:
    """What a run wrote and where it stopped. `history` has one row per iteration."""

    reason: str  # one of STOP_REASONS
    iteration: int
    epoch: int
    history: pd.DataFrame
    paths: dict[str, Path]  # checkpoint, gen_black, gen_blond, history, samples
    gen_A: nn.Module
    gen_B: nn.Module
    disc_A: nn.Module
    disc_B: nn.Module
    skipped_images: dict[str, int] = field(default_factory=dict)  # unreadable file -> times skipped
    precision: str = "float32"  # what this session trained in: float32, bfloat16 or float16
    precision_reason: str = ""  # why (`ch06util.pick_precision`)

# ------------------------------------------------------------------------- interruptions
class _DeferredInterrupt:
    """Turn the first Ctrl-C (SIGINT) or termination signal (SIGTERM) into a flag checked
    between iterations.

    A KeyboardInterrupt in the middle of `train_step` could leave the discriminators
    stepped and the generators not, which no checkpoint can describe. A second signal
    raises at once (the last periodic checkpoint is then kept), except under `torchrun`,
    whose agent repeats the signal itself and kills the workers 30 s later anyway. SIGTERM is
    what a laptop shutting down, a cluster's time limit or `kill` sends. Only the main thread
    can install signal handlers; elsewhere this does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: int | None = None  # the signal received, if any
        self._previous: dict[int, Any] = {}

    @property
    def reason(self) -> str:
        return "terminated" if self.requested == signal.SIGTERM else "interrupted"

    def _handler(self, signum, frame) -> None:
        if self.requested is not None:
            if os.environ.get(UNDER_TORCHRUN):
                return
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        self.requested = signum
        if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for all
            return
        what = ("Termination signal (SIGTERM) received" if signum == signal.SIGTERM
                else "Interrupt received")
        print(f"\n{what}: finishing this iteration, then saving a checkpoint (press Ctrl-C again to "
              "stop at once).", file=sys.stderr)

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handler) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


# ----------------------------------------------------------------------------- the loop
@torch.no_grad()
def _sample_grid(A, B, fake_A, fake_B, gen_A, gen_B, autocast_dtype) -> torch.Tensor:
    """Rows: real A, fake B, cycled A / real B, fake A, cycled B (first item of the batch)."""
    with autocast(A.device.type, autocast_dtype):
        cycle_A = gen_A(fake_B[:1])
        cycle_B = gen_B(fake_A[:1])
    images = torch.cat([A[:1], fake_B[:1], cycle_A, B[:1], fake_A[:1], cycle_B]).float()
    return make_grid(images * 0.5 + 0.5, nrow=3, padding=2).clamp(0, 1).cpu()


def train(config: TrainConfig, *, progress: bool = True,
          callback: Callable[[TrainEvent], bool | None] | None = None,
          clock: Callable[[], float] = time.monotonic) -> TrainResult:
    """Train (or continue) a CycleGAN run as `config` says; see the module docstring.

    `callback(event)` runs on rank 0 every `log_every` iterations and at every sample
    grid; returning True stops the run (reason "callback") after a checkpoint. `clock`
    measures the `minutes` budget and the speed estimate (tests pass a fake one). With no
    budget at all the run trains one epoch, as the chapter does.
    """
    output_folder(config.out, "--out", create=False)  # a file there: one line, before any work
    check_two_domains(config.domain_a, config.domain_b)
    ctx, device = setup_distributed(config.device)
    try:
        # one session per folder: a second run into the same --out stops at once, naming the first
        with main_rank_lock(Path(config.out), ctx, device, advice="choose another --out folder"):
            return _train(config, ctx, device, progress, callback, clock)
    finally:
        if ctx.owns_group:
            dist.destroy_process_group()


def choose_cpu_threads(config: TrainConfig) -> int:
    """(extra code) The faster of PyTorch's default thread count and one, timed on this run's networks.

    Throw-away networks and random batches at the run's sizes, before the run seeds itself, so
    the run's results do not depend on this probe (see `speed.pick_cpu_threads`).
    """
    cpu = torch.device("cpu")
    nets = build_networks(config, cpu)
    opt_disc, opt_gen = build_optimizers(config, nets)
    dtype = pick_precision(cpu, config.mixed_precision).dtype  # timed in the precision the run trains in
    scalers = make_grad_scaler(cpu, dtype), make_grad_scaler(cpu, dtype)
    A, B = (torch.rand(config.batch_size, 3, config.image_size, config.image_size) * 2 - 1 for _ in "AB")

    def step() -> None:
        train_step(A, B, nets["disc_A"], nets["disc_B"], nets["gen_A"], nets["gen_B"], opt_disc, opt_gen,
                   nn.L1Loss(), nn.MSELoss(), *scalers, autocast_dtype=dtype, **config.loss_weights())

    return speed.pick_cpu_threads(step)


def _settle_cpu_threads(config: TrainConfig, ctx: Dist, device: torch.device, progress: bool) -> None:
    """On a CPU, every run (the command line, the notebooks, the demo) trains at the thread
    count that measured faster here; said in one line. Not under torchrun (its processes
    share the cores by design) and not with one thread, where there is nothing to choose."""
    default = torch.get_num_threads()
    if device.type != "cpu" or ctx.enabled or default <= 1:
        return
    threads = choose_cpu_threads(config)
    if ctx.main and progress:
        print(f"CPU threads: {threads} (the faster of {default} and 1 here, timed over a few steps: "
              "a busy core makes two threads wait for each other)")


def _train(config, ctx: Dist, device, progress, callback, clock) -> TrainResult:
    """The run in the order a reader follows it; each step is one method of `_Run`."""
    found = load_latest_checkpoint(config.out) if config.resume else None
    if found is not None:  # the run's own settings, or a clear word about each difference
        config, lines = reconcile(config, found[0].get("config"), ctx.world_size, found[1])
        for line in lines if ctx.main else ():
            print(line)
    _settle_cpu_threads(config, ctx, device, progress)  # before the run seeds itself: a throw-away probe
    run = _Run(config, ctx, device, progress, callback, clock)  # set-up: data, networks, optimisers
    run.resume(found)  # or start fresh; refuses to overwrite a run or to continue one on other data
    return run.loop()  # iterations, logs and samples, checkpoints; then finish


def precision_change(saved: str, now: Precision) -> str | None:
    """The line a resumed run prints when this session computes in another precision, else None.

    The new session's precision applies: autocast only changes the arithmetic (weights and
    optimiser state are float32 in every precision), so the run trains on; keeping the old
    one would leave `--no-mixed-precision` without effect when ruling precision out of NaN
    losses, and would emulate bfloat16 (about 3x slower) on a machine without it.
    """
    if saved == now.name:
        return None
    if saved == "unrecorded":
        return (f"The checkpoint does not record its precision (an older version wrote it); this "
                f"session trains in {now.name}.")
    return (f"This run trained in {saved} until now and continues in {now.name} ({now.reason}): the "
            "weights are float32 in both, so it trains on, but not bit for bit as it would have "
            f"in {saved}.")


# The speed estimate: the first iterations of a session are slow (kernels chosen, caches and
# memory pools filled; in notebook 03's run the first ~10 took 8-13 s each against ~0.5 s later,
# partly two threads fighting another program, which the thread pick above now avoids), so it
# skips them and times the next ones, on the thread count the run trains with.
ETA_WARMUP = 3  # iterations not timed (fewer in a short run, or once they took ETA_SECONDS) ...
ETA_STEPS = 10  # ... then iterations timed (a tenth of a short run, at least 2) ...
ETA_SECONDS = 10.0  # ... or fewer, once they took this long


def _duration(seconds: float) -> str:
    """'about 40 s', 'about 23 min', 'about 2.5 h': a rounded wall time for a person."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def _seconds(value: float) -> str:
    """'12 s', '8.4 s', '0.41 s', '0.0042 s': two significant digits, never '0.00 s'."""
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s" if value >= 1 else f"{value:.2g} s"


class _Run:
    """One session of a training run, in named steps (see `_train`).

    Set-up (`__init__`) builds everything in a fixed order, which fixes the random draws;
    `resume` loads the newest checkpoint (or starts fresh); `loop` runs `one_iteration`,
    then `log_and_sample`, `decide_stop` and, every `checkpoint_every`, `checkpoint`; `finish`
    saves the last state. Everything a checkpoint must hold lives on this object.
    """

    # ----------------------------------------------------------------------- set-up
    def __init__(self, config: TrainConfig, ctx: Dist, device: torch.device, progress: bool,
                 callback: Callable[[TrainEvent], bool | None] | None, clock: Callable[[], float]):
        self.config, self.ctx, self.device = config, ctx, device
        self.progress, self.callback, self.clock = progress, callback, clock
        self.out = out = Path(config.out)
        self.paths = {"checkpoint": out / CHECKPOINT, "gen_black": out / GEN_BLACK,
                      "gen_blond": out / GEN_BLOND, "history": out / HISTORY, "samples": out / SAMPLES}
        seed_everything(config.seed)
        self.config = config = fast_gpu.settle(config, device, log=print if ctx.main else lambda _: None)

        self.dataset = SeededPairs(config.domain_a, config.domain_b, make_transform(config.image_size))
        self.data_record = self.dataset.record()  # what the run trains on: fixed once the lists are made
        check_two_domains(config.domain_a, config.domain_b, (self.dataset.A_images, self.dataset.B_images))
        self.sampler = ResumableSampler(self.dataset.A_len, self.dataset.B_len, seed=config.seed,
                                        random_pairing=config.random_pairing, rank=ctx.rank,
                                        world_size=ctx.world_size)
        # Its own generator: each `iter(loader)` draws a worker base seed, which must not
        # move the global torch RNG (a resumed run would draw it once more).
        self.loader = DataLoader(PairItems(self.dataset), batch_size=config.batch_size, sampler=self.sampler,
                                 generator=torch.Generator().manual_seed(config.seed),
                                 **speed.loader_options(device, config.workers))
        per_epoch = math.ceil(self.sampler.per_rank / config.batch_size)
        no_budget = config.iterations is None and config.epochs is None and config.minutes is None
        self.epochs_budget = 1 if no_budget else config.epochs  # the chapter trains one epoch
        self.total = total_iterations(config.iterations, self.epochs_budget, per_epoch)
        self.decay_from = resolve_decay(config, self.total)

        speed.tune_backends(device)
        self.nets = build_networks(config, device)
        self.opt_disc, self.opt_gen = build_optimizers(config, self.nets)
        # the precision is this session's: a resume in another one says so (`resume`)
        self.precision = pick_precision(device, config.mixed_precision)
        self.autocast_dtype = self.precision.dtype
        self.d_scaler = make_grad_scaler(device, self.autocast_dtype)
        self.g_scaler = make_grad_scaler(device, self.autocast_dtype)
        seeds = np.random.SeedSequence([config.seed, ctx.rank]).generate_state(2)
        self.pool_A, self.pool_B = (ImagePool(config.pool_size, seed=int(s)) for s in seeds)
        self.pos = {"iteration": 0, "epoch": 0, "position": 0, "seconds": 0.0}
        self.l1, self.mse = nn.L1Loss(), nn.MSELoss()
        self.pending: list[tuple[int, int, float, float, torch.Tensor]] = []  # losses not yet read
        self.last_losses: dict[str, float] = {}
        self.skipped: dict[str, int] = {}  # unreadable image -> times skipped this session

    # ----------------------------------------------------------------------- resume
    def resume(self, found: tuple[dict[str, Any], Path] | None) -> None:
        """Continue from `found` (the newest checkpoint, when `resume=True`), or start fresh; never
        silently overwrite a run or files it did not write, never continue one on other data."""
        config, ctx, out = self.config, self.ctx, self.out
        change = None
        if found is not None:
            state, source = found
            check_same_data(state.get("data"), self.data_record, source, config.resume_anyway)
            change = precision_change(state.get("precision", "unrecorded"), self.precision)
            restore(state, source, config, self.nets, self.opt_disc, self.opt_gen, self.d_scaler,
                     self.g_scaler, self.pool_A, self.pool_B, self.device, ctx)
            self.pos = {k: state[k] for k in self.pos}
            if ctx.main:
                print(f"Resuming from {source} at iteration {self.pos['iteration']} "
                      f"(epoch {self.pos['epoch']}).")
        elif config.resume:
            if ctx.main:
                print(f"No checkpoint in {out}: starting fresh.")
        elif (out / CHECKPOINT).is_file() or (out / PREVIOUS_CHECKPOINT).is_file():
            raise FileExistsError(
                f"{out} already holds a training checkpoint. Pass --resume (resume=True) to continue "
                "it, or choose another --out folder to start a new run."
            )
        refuse_foreign_outputs(out, resuming=found is not None, force=config.force)
        if ctx.main:  # nothing was written before this point
            self.paths["samples"].mkdir(parents=True, exist_ok=True)
            removed = remove_stale_temporaries(out)
            if removed:
                print(removed)
        if ctx.main:  # every session says what it computes in, and why
            print(f"Precision: {self.precision}")
            if change:
                print(change)
        self.history = History(self.paths["history"],
                                keep_through=self.pos["iteration"] if found else None, write=ctx.main)
        self.run_nets = wrap_distributed(self.nets, ctx, self.device)
        self.step_fn = train_step  # extra code – the fast GPU path: compiled networks, eager fallback
        if config.fast_gpu and self.device.type == "cuda":
            left = None if self.total is None else self.total - self.pos["iteration"]
            self.step_fn = fast_gpu.FastStep(train_step, self.device, remaining=left,
                                             log=print if ctx.main else lambda _: None)

    # ------------------------------------------------------------------ the loop
    def loop(self) -> TrainResult:
        """Iterate until a budget, the callback or Ctrl-C stops the run, then `finish`."""
        config, pos = self.config, self.pos
        self.started = self.clock()
        self.seconds_before, self.first_iteration = pos["seconds"], pos["iteration"]
        self.wish: str | None = None  # a stop this rank wants; under DDP agreed at log boundaries
        self.in_step = self.in_checkpoint = False
        self.saved_at = pos["iteration"]  # the iteration of the newest checkpoint on disk
        self.estimated = False  # the duration is printed once
        self.durations: list[float] = []  # seconds of each iteration of this session, until estimated
        self.last_seconds, self.warmup = pos["seconds"], None
        reason = self.reached_budget()
        self.bar = tqdm(total=self.total, initial=pos["iteration"], unit="it", dynamic_ncols=True,
                        disable=not (self.progress and self.ctx.main))
        with _DeferredInterrupt() as interrupt:
            try:
                while reason is None:
                    self.sampler.set_epoch(pos["epoch"], pos["position"])
                    for A, B, skipped in self.loader:
                        self.note_skipped(skipped)
                        step = self.one_iteration(A, B)
                        self.log_and_sample(step)
                        reason = self.decide_stop(interrupt.reason if interrupt.requested else None)
                        if reason is not None:
                            break
                        if pos["iteration"] % config.checkpoint_every == 0:
                            if self.ctx.main:
                                self.flush()
                            self.checkpoint()
            except KeyboardInterrupt as stop:
                reason = "terminated" if isinstance(stop, Terminated) else "interrupted"
                if self.in_step:  # the networks may be half-updated: keep the last periodic checkpoint
                    return self.stop_mid_iteration(reason)
            except Exception:
                self.save_before_error()
                raise
        return self.finish(reason)

    def one_iteration(self, A: torch.Tensor, B: torch.Tensor) -> dict[str, torch.Tensor]:
        """The chapter's training step (listing 6.7) at this iteration's lr; moves the position.
        Returns the step's losses and images, with the batch on the device as "A" and "B"."""
        config, pos = self.config, self.pos
        self.lr = learning_rate(config.lr, pos["iteration"], self.total, self.decay_from)
        for group in (*self.opt_disc.param_groups, *self.opt_gen.param_groups):
            group["lr"] = self.lr
        A = A.to(self.device, non_blocking=True)
        B = B.to(self.device, non_blocking=True)
        self.in_step = True
        nets = self.run_nets
        step = self.step_fn(A, B, nets["disc_A"], nets["disc_B"], nets["gen_A"], nets["gen_B"],
                            self.opt_disc, self.opt_gen, self.l1, self.mse, self.d_scaler, self.g_scaler,
                            autocast_dtype=self.autocast_dtype, **config.loss_weights(),
                            pool_A=self.pool_A if config.pool_size else None,
                            pool_B=self.pool_B if config.pool_size else None)
        epoch = pos["epoch"]
        pos["iteration"] += 1
        pos["position"] += A.shape[0]
        if pos["position"] >= self.sampler.per_rank:
            pos["epoch"] += 1
            pos["position"] = 0
        pos["seconds"] = self.seconds_before + self.clock() - self.started
        self.in_step = False
        if self.ctx.main:
            self.pending.append((pos["iteration"], epoch, self.lr, pos["seconds"],
                                 torch.stack([step[k] for k in LOSS_KEYS])))
        self.bar.update(1)
        self.estimate_duration()
        step["A"], step["B"] = A, B
        return step

    def estimate_duration(self) -> None:
        """Once, early: how long the run takes on this machine, said to be an estimate.

        Measured after warm-up (`ETA_WARMUP` iterations, fewer in a short run) on the
        iterations that follow (`ETA_STEPS`, or `ETA_SECONDS` of them), at the run's own
        settings and threads; the median, so one stall (another program, a sample grid) does
        not set it. Nothing is printed when the run ends before the estimate is ready.
        """
        if self.estimated or not (self.progress and self.ctx.main and self.total):
            return
        seconds = self.pos["seconds"]
        self.durations.append(seconds - self.last_seconds)
        self.last_seconds = seconds
        done, left = len(self.durations), self.total - self.first_iteration
        if self.warmup is None:
            if done >= min(ETA_WARMUP, max(1, left // 4)) or sum(self.durations) >= ETA_SECONDS:
                self.warmup = done
            return
        timed = self.durations[self.warmup:]
        if len(timed) < min(ETA_STEPS, max(2, left // 10)) and sum(timed) < ETA_SECONDS and done < left:
            return
        self.estimated = True
        if done >= left:
            return  # the run is over: nothing left to estimate
        per_iteration = statistics.median(timed)
        which = f"the remaining {left:,}" if self.first_iteration else f"the run's {left:,}"
        first = self.first_iteration + self.warmup + 1
        last = first + len(timed) - 1
        median_of = f"iteration {first:,}" if first == last else f"iterations {first:,}–{last:,}"
        warm = f"{self.warmup} warm-up iteration{'s' if self.warmup > 1 else ''}"
        cap = ""
        if self.config.minutes is not None and per_iteration * left > 60 * self.config.minutes:
            cap = f" The {self.config.minutes:g}-minute budget stops this session before that."
        self.bar.write(f"Estimate: {which} iterations take {_duration(per_iteration * left)} on this "
                       f"machine ({_seconds(per_iteration)} per iteration, the median of {median_of}, "
                       f"after {warm}).{cap}")

    def note_skipped(self, skipped: Sequence[str]) -> None:
        """Warn (once per file) about unreadable images the data loader skipped, and count them."""
        for line in skipped:
            for path in filter(None, line.split("\n")):
                if path not in self.skipped:
                    self.bar.write(f"warning: skipped {path}: it cannot be read (damaged or gone); the "
                                   "next image of its folder took its place. Replace or remove it.",
                                   file=sys.stderr)
                self.skipped[path] = self.skipped.get(path, 0) + 1

    def flush(self) -> dict[str, float]:
        """Read the pending losses (one device sync) and append them to history.csv."""
        if not self.pending:
            return self.last_losses
        losses = torch.stack([row[4] for row in self.pending]).cpu().numpy()  # one sync per flush
        rows = pd.DataFrame(np.array([row[:4] for row in self.pending]),
                            columns=["iteration", "epoch", "lr", "seconds"])
        rows[list(LOSS_KEYS)] = losses
        rows = rows.astype({"iteration": "int64", "epoch": "int64"})[list(HISTORY_COLUMNS)]
        self.history.append(rows)
        self.pending.clear()
        self.last_losses.update({k: float(v) for k, v in zip(LOSS_KEYS, losses[-1], strict=True)})
        return self.last_losses

    def log_and_sample(self, step: dict[str, torch.Tensor]) -> None:
        """Every `log_every` iterations (and at a stop): read the losses, show them, call the
        callback; every `sample_every`: save a grid of real, translated and cycled faces."""
        config, pos = self.config, self.pos
        self.stop = self.reached_budget()  # the same on every rank
        if config.minutes is not None and self.clock() - self.started >= 60 * config.minutes:
            self.wish = self.wish or "minutes"
        sample = config.sample_every and pos["iteration"] % config.sample_every == 0
        if not (self.ctx.main and (sample or pos["iteration"] % config.log_every == 0 or self.stop)):
            return
        losses = self.flush()
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()}, refresh=False)
        event = TrainEvent(pos["iteration"], pos["epoch"], dict(losses), self.lr)
        if sample:
            event.grid = _sample_grid(step["A"], step["B"], step["fake_A"], step["fake_B"],
                                      self.nets["gen_A"], self.nets["gen_B"], self.autocast_dtype)
            event.sample_path = self.paths["samples"] / f"{pos['iteration']:08d}.png"
            save_image(event.grid, event.sample_path)
            claim(self.out, f"{SAMPLES}/{event.sample_path.name}")
        if self.callback is not None and self.callback(event):
            self.wish = self.wish or "callback"

    def decide_stop(self, signalled: str | None) -> str | None:
        """Why the run stops now, or None. Under DDP every rank agrees (at log boundaries).
        `signalled`: "interrupted" (Ctrl-C) or "terminated" (SIGTERM) when a signal came."""
        if signalled:
            self.wish = signalled
        if not self.ctx.enabled:
            return self.stop or self.wish
        if self.stop or self.pos["iteration"] % self.config.log_every == 0:
            # one collective at log boundaries, not every iteration
            return agree(self.stop or self.wish, self.ctx, self.device)
        return None

    def reached_budget(self) -> str | None:
        if self.config.iterations is not None and self.pos["iteration"] >= self.config.iterations:
            return "iterations"
        if self.epochs_budget is not None and self.pos["epoch"] >= self.epochs_budget:
            return "epochs"
        return None

    # ------------------------------------------------------------------ checkpoint
    def checkpoint(self) -> None:
        """Everything the run needs to continue bit for bit, plus the chapter's two files."""
        ctx, nets = self.ctx, self.nets
        self.in_checkpoint = True
        pools = gather({"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict()}, ctx)
        if ctx.main:
            save_checkpoint({
                "format": CHECKPOINT_FORMAT, **self.pos,
                "config": record(self.config, ctx.world_size),  # every setting that shapes the run
                "data": self.data_record,  # checked by the next --resume
                **{name: net.state_dict() for name, net in nets.items()},
                "opt_disc": self.opt_disc.state_dict(), "opt_gen": self.opt_gen.state_dict(),
                "d_scaler": self.d_scaler.state_dict(), "g_scaler": self.g_scaler.state_dict(),
                "precision": self.precision.name,  # this session's; a resume in another says so
                "pools": pools,  # one entry per rank: each rank's fakes differ
                "rng": rng_state(),
            }, self.out)
            atomic_save(nets["gen_A"].state_dict(), self.paths["gen_black"])
            claim(self.out, GEN_BLACK)
            atomic_save(nets["gen_B"].state_dict(), self.paths["gen_blond"])
            claim(self.out, GEN_BLOND)
        ctx.barrier()
        self.in_checkpoint = False
        self.saved_at = self.pos["iteration"]

    def save_before_error(self) -> None:
        """An error between two iterations (data the skips could not absorb, a callback's bug)
        must not cost the iterations since the last checkpoint: save them, then let the error
        through. Not inside a step (the networks may be half-updated), not when saving was what
        failed, and not under DDP (the other ranks would wait for this one)."""
        if self.in_step or self.in_checkpoint or self.ctx.enabled or self.pos["iteration"] <= self.saved_at:
            return
        try:
            self.bar.close()
            self.flush()
            self.checkpoint()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            return
        print(f"Saved a checkpoint at iteration {self.pos['iteration']:,} in {self.out} before stopping on "
              "the error below; fix it, then run again with --resume.", file=sys.stderr)

    # ---------------------------------------------------------------------- finish
    def finish(self, reason: str) -> TrainResult:
        """Write the last losses and a final checkpoint; say where the run stopped."""
        if reason in ("minutes", "callback") and self.bar.total and self.bar.n < self.bar.total:
            self.bar.total = self.bar.n  # stopped where it was told to: Jupyter's bar ends green, not red
        self.bar.close()
        if self.ctx.main:
            self.flush()
        if self.pos["iteration"] > self.first_iteration:
            self.checkpoint()
        if self.ctx.main and self.progress:
            print(f"Stopped at iteration {self.pos['iteration']:,} ({reason}); wrote {self.out}.")
        self.report_skipped()
        return self.result(reason)

    def stop_mid_iteration(self, reason: str) -> TrainResult:
        """A second Ctrl-C inside a step: the networks may be half-updated, so no checkpoint."""
        self.bar.close()
        if self.ctx.main:
            self.flush()
            print(f"Stopped in the middle of iteration {self.pos['iteration'] + 1}: "
                  f"the last checkpoint in {self.out} is kept.", file=sys.stderr)
        self.report_skipped()
        return self.result(reason)

    def report_skipped(self) -> None:
        if self.skipped:
            names = ", ".join(sorted(self.skipped)[:5]) + (" ..." if len(self.skipped) > 5 else "")
            print(f"warning: {sum(self.skipped.values())} reads of {len(self.skipped)} unreadable "
                  f"image(s) were skipped: {names}. Replace or remove them.", file=sys.stderr)

    def result(self, reason: str) -> TrainResult:
        return TrainResult(reason=reason, iteration=self.pos["iteration"], epoch=self.pos["epoch"],
                           history=self.history.frame(), paths=self.paths, **self.nets,
                           skipped_images=dict(self.skipped), precision=self.precision.name,
                           precision_reason=self.precision.reason)
