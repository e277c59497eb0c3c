"""The fast GPU path: one switch (`--fast-gpu`, notebook 03's `FAST_GPU`), the chapter's model.

(Extra code – not in the book.) The chapter's loop at batch 1 keeps a GPU mostly idle: on
an H200 one iteration did 1.3 TFLOP in 80 ms, some 16 TFLOP/s, because it launches
some two thousand small kernels (instance norms, reflect pads, ReLUs, each a pass over
memory). This path keeps the networks, losses and `ch06util.train_step` unchanged and
changes how they run:

* `torch.compile(mode="reduce-overhead")`: inductor fuses each reflect pad, instance norm
  and ReLU around a convolution into a few kernels, and CUDA graphs replay a whole network
  with one launch (what batch 1 needs);
* channels-last memory, where `speed.channels_last_is_exact` finds its gradients right;
* a batch size picked from the GPU's memory, with the learning rate scaled to it
  (`speed.scaled_lr`), both printed; a batch size you give is kept as it is.

Compiling costs time (a minute or more on a GPU; unmeasured here), so `FastStep` runs the
first iterations eagerly and times them, then compiles, times the compiled iterations and
prints the compile time, the speed-up and after how many iterations it has paid for itself.
When compiling fails (or no compiler is installed, or the compiled step is not faster) it
says so in one line and training continues eagerly, from the same weights.

On a CPU (and Apple's MPS) the switch changes nothing and says so: the chapter's step at
256 px already runs at the CPU's float32 matrix rate (benchmarks/README.md), and compiling
the full model there took minutes for no gain at that size.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from utils import speed
from utils.ch06util import make_grad_scaler, pick_precision, train_step
from utils.networks import build_networks, build_optimizers

# The CycleGAN paper's learning rate at batch 1 (2e-4): the picked batch keeps its linearly
# scaled learning rate at or below it, so the chapter's 1e-5 allows batch 16 (1.6e-4).
LR_LIMIT = 2e-4
# Above 64 the H200 measured no more pairs per second (batch 16: 100, 64: 109 pairs/s).
MAX_BATCH = 64
# Share of the GPU's memory the picked batch may use (the rest: CUDA graph pools, the
# allocator's fragmentation, the compiled kernels' own workspaces).
MEMORY_SHARE = 0.6
# Compiling pays back only over a long run: a minute or more of compiling against tens of
# milliseconds saved per iteration. Shorter runs stay eager.
MIN_ITERATIONS = 1000

Log = Callable[[str], None]


# --------------------------------------------------------------------------- batch and lr
def pick_batch_size(lr: float, total_bytes: int, fixed_bytes: int, per_pair_bytes: int, *,
                    lr_limit: float = LR_LIMIT, cap: int = MAX_BATCH,
                    share: float = MEMORY_SHARE) -> tuple[int, str]:
    """The largest power of two that fits `share` of the memory, keeps `scaled_lr` <= `lr_limit`
    and is at most `cap`; with the reason that bounded it.

    Memory is modelled as `fixed_bytes + batch * per_pair_bytes` (networks, optimiser state
    and one batch's activations, which grow linearly with the batch).
    """
    budget = share * total_bytes - fixed_bytes
    by_memory = int(budget // per_pair_bytes) if per_pair_bytes > 0 else cap
    by_lr = int(lr_limit / lr * (1 + 1e-9)) if lr > 0 else cap
    limits = {"memory": by_memory, "learning rate": by_lr, "cap": cap}
    reason, largest = min(limits.items(), key=lambda item: item[1])
    batch = 1
    while batch * 2 <= largest:
        batch *= 2
    return batch, reason


def measure_memory(config: Any, device: torch.device) -> tuple[int, int, int]:
    """(total, fixed, per pair) bytes of one training iteration of `config`'s sizes on a GPU.

    Runs `train_step` on throwaway copies of the networks at batch 1 and 2 (a second or
    two) and reads the allocator's peaks; the run's own networks are not touched, and the
    random number generators are left as they were (the run's initial weights stay its own).
    """
    def peak(batch: int) -> int:
        built = build_networks(config, device)  # the run's networks, generator variant included
        nets = [built[name] for name in ("disc_A", "disc_B", "gen_A", "gen_B")]
        opt_disc, opt_gen = build_optimizers(config, built)
        dtype = _autocast_dtype(config, device)
        x = torch.zeros(batch, 3, config.image_size, config.image_size, device=device)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        train_step(x, x, *nets, opt_disc, opt_gen, nn.L1Loss(), nn.MSELoss(),
                   make_grad_scaler(device, dtype), make_grad_scaler(device, dtype),
                   autocast_dtype=dtype, **config.loss_weights())
        torch.cuda.synchronize(device)
        used = torch.cuda.max_memory_allocated(device)
        del built, nets, opt_disc, opt_gen, x
        torch.cuda.empty_cache()
        return used

    with torch.random.fork_rng(devices=[device]):
        one, two = peak(1), peak(2)
    total = torch.cuda.get_device_properties(device).total_memory
    return total, max(0, 2 * one - two), max(1, two - one)


def _autocast_dtype(config: Any, device: torch.device) -> torch.dtype | None:
    return pick_precision(device, config.mixed_precision).dtype


def settle(config: Any, device: torch.device | str, *, log: Log = print,
           memory: Callable[[Any, torch.device], tuple[int, int, int]] = measure_memory) -> Any:
    """`config` with the batch size and learning rate of the fast GPU path, printed.

    Only when `config.fast_gpu` is set and `device` is a CUDA GPU. A batch size other than
    the chapter's 1 is the reader's choice and is kept, with its learning rate; at 1 the
    batch is picked (`pick_batch_size`) and the learning rate scaled linearly to it. The
    budgets counted in iterations (`iterations`, a numeric `decay_from`, `checkpoint_every`,
    `sample_every`) are divided by the batch, so the run still sees the same number of pairs.
    """
    device = torch.device(device)
    if not config.fast_gpu:
        return config
    if device.type != "cuda":
        log(f"fast GPU path: off on {device.type} (nothing to gain there: benchmarks/README.md); "
            "training runs as without --fast-gpu.")
        return config
    if config.batch_size != 1:
        log(f"fast GPU path: batch {config.batch_size} as given, learning rate {config.lr:.3g}.")
        return config
    total, fixed, per_pair = memory(config, device)
    batch, bound = pick_batch_size(config.lr, total, fixed, per_pair)
    lr = speed.scaled_lr(batch, config.lr)
    log(f"fast GPU path: batch {batch} (bounded by {bound}; about {per_pair / 2**20:.0f} MiB per pair of "
        f"{total / 2**30:.0f} GiB), learning rate {lr:.3g} = {config.lr:.3g} x {batch} "
        "(linear rule, speed.scaled_lr; a larger batch changes the optimisation: compare samples). "
        "Pass --batch-size (and --lr) to choose yourself.")
    if batch == 1:
        return config
    per_batch = {name: max(1, getattr(config, name) // batch)
                 for name in ("checkpoint_every", "sample_every") if getattr(config, name)}
    if config.iterations is not None:
        per_batch["iterations"] = -(-config.iterations // batch)
        log(f"fast GPU path: {config.iterations:,} iterations at batch 1 become {per_batch['iterations']:,} "
            f"at batch {batch} (the same {config.iterations:,} pairs).")
    if isinstance(config.decay_from, int):
        per_batch["decay_from"] = config.decay_from // batch
    return dataclasses.replace(config, batch_size=batch, lr=lr, **per_batch)


# ----------------------------------------------------------------------------- compiling
def compiler_missing(device: torch.device | str) -> str | None:
    """Why `torch.compile` cannot generate code for `device` here, or None when it can."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"the fast GPU path compiles only for CUDA, not {device.type}"
    try:
        from torch.utils._triton import has_triton
    except ImportError:
        return f"this PyTorch ({torch.__version__}) has no torch.compile for CUDA"
    if not has_triton():
        return "Triton, torch.compile's GPU code generator, is not installed (pip install triton)"
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:120] if text else ''}"


@dataclasses.dataclass
class _Snapshot:
    """Everything one training iteration changes, to undo an iteration that failed half-way."""

    nets: list[dict[str, torch.Tensor]]
    optimizers: list[dict[str, Any]]
    scalers: list[dict[str, Any]]
    pools: list[dict[str, Any] | None]

    @classmethod
    def take(cls, nets, optimizers, scalers, pools) -> _Snapshot:
        return cls([{k: v.detach().clone() for k, v in net.state_dict().items()} for net in nets],
                   [copy.deepcopy(opt.state_dict()) for opt in optimizers],
                   [copy.deepcopy(scaler.state_dict()) for scaler in scalers],
                   [pool.state_dict() if pool is not None else None for pool in pools])

    def restore(self, nets, optimizers, scalers, pools, device) -> None:
        for net, state in zip(nets, self.nets, strict=True):
            net.load_state_dict(state)
        for opt, state in zip(optimizers, self.optimizers, strict=True):
            opt.load_state_dict(state)
            speed.match_optimizer_layout(opt)
        for scaler, state in zip(scalers, self.scalers, strict=True):
            if state:
                scaler.load_state_dict(state)
        for pool, state in zip(pools, self.pools, strict=True):
            if pool is not None:
                pool.load_state_dict(state, device)


class _OwnCopies:
    """An image pool that keeps copies: CUDA graphs write the next iteration's outputs over this one's."""

    def __init__(self, pool: Any):
        self.pool = pool

    def query(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool.query(images.clone())


class FastStep:
    """`train_step` with its four networks compiled, timed, and an eager fallback.

    Call it exactly like `ch06util.train_step`. Iterations 1-2 run eagerly (the second is
    timed), 3-5 compile (timed together: the compile time), 6-25 are timed compiled; then one
    line reports compile time, speed-up and payback. Each compiling iteration first saves
    the networks', optimisers', scalers' and pools' state: if it fails, that state comes
    back and the iteration is redone eagerly, so a failed compile changes nothing.
    """

    def __init__(self, step: Callable[..., dict[str, torch.Tensor]], device: torch.device | str, *,
                 remaining: int | None = None, mode: str | None = None, backend: str | None = None,
                 eager_steps: int = 2, compile_steps: int = 3, timed_steps: int = 20,
                 channels_last: bool | None = None, log: Log = print):
        self.step, self.device = step, torch.device(device)
        self.mode, self.backend = mode, backend
        self.eager_steps, self.compile_steps, self.timed_steps = eager_steps, compile_steps, timed_steps
        self.channels_last = channels_last
        self.log = log
        self.calls = 0
        self.compiled: dict[int, nn.Module] | None = None
        self.times: dict[str, float] = {}
        self.state = "eager"  # eager -> compiling -> compiled | failed
        self.reason: str | None = None
        if remaining is not None and remaining < MIN_ITERATIONS:
            self.reason = (f"{remaining} iterations are too few to win back the compile time "
                           f"(fewer than {MIN_ITERATIONS})")
        elif (missing := self.missing_compiler()) is not None:
            self.reason = missing
        if self.reason:
            self.state = "failed"
            self.log(f"fast GPU path: not compiling ({self.reason}); eager iterations.")

    def missing_compiler(self) -> str | None:
        """Hook for tests (a compiler-less machine); `compiler_missing(device)` otherwise."""
        if self.backend is not None:  # an explicit backend (tests: "eager") needs no code generator
            return None
        return compiler_missing(self.device)

    # ------------------------------------------------------------------ the call
    def __call__(self, A: torch.Tensor, B: torch.Tensor, disc_A: nn.Module, disc_B: nn.Module,
                 gen_A: nn.Module, gen_B: nn.Module, opt_disc: torch.optim.Optimizer,
                 opt_gen: torch.optim.Optimizer, l1: nn.Module, mse: nn.Module, d_scaler, g_scaler,
                 **options: Any) -> dict[str, torch.Tensor]:
        nets = [disc_A, disc_B, gen_A, gen_B]
        rest = (opt_disc, opt_gen, l1, mse, d_scaler, g_scaler)
        self.calls += 1
        n = self.calls
        if self.state == "eager" and n > self.eager_steps:
            self._compile(nets, (opt_disc, opt_gen))
        if self.state == "eager" or self.state == "failed":
            if self.state == "eager" and n == self.eager_steps:
                return self._timed("eager", lambda: self.step(A, B, *nets, *rest, **options))
            return self.step(A, B, *nets, *rest, **options)

        A, B = self._layout(A), self._layout(B)
        fast = [self.compiled[id(net)] for net in nets]
        pools = [options.get("pool_A"), options.get("pool_B")]
        options = {**options, **{k: _OwnCopies(pool) for k, pool in zip(("pool_A", "pool_B"), pools,
                                                                        strict=True) if pool is not None}}
        if self.state == "compiling":
            saved = _Snapshot.take(nets, (opt_disc, opt_gen), (d_scaler, g_scaler), pools)
            start = time.perf_counter()
            try:
                self._mark_step()
                out = self.step(A, B, *fast, *rest, **options)
                self._sync()
            except Exception as error:  # noqa: BLE001 - any compile failure falls back, reported
                saved.restore(nets, (opt_disc, opt_gen), (d_scaler, g_scaler), pools, self.device)
                self._give_up(f"compiling failed ({_first_line(error)})", nets, (opt_disc, opt_gen))
                return self.step(A, B, *nets, *rest, **options)
            self.times["compile"] = self.times.get("compile", 0.0) + time.perf_counter() - start
            if n >= self.eager_steps + self.compile_steps:
                self.state = "compiled"
                self.times["window_start"] = time.perf_counter()
            return out

        self._mark_step()
        out = self.step(A, B, *fast, *rest, **options)
        if n == self.eager_steps + self.compile_steps + self.timed_steps:
            self._sync()
            self.times["compiled"] = (time.perf_counter() - self.times["window_start"]) / self.timed_steps
            self._report(nets, (opt_disc, opt_gen))
        return out

    # ------------------------------------------------------------------ helpers
    def _timed(self, key: str, run: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        self._sync()
        start = time.perf_counter()
        out = run()
        self._sync()
        self.times[key] = time.perf_counter() - start
        return out

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _mark_step(self) -> None:
        # CUDA graphs reuse their output memory: say where one training iteration starts.
        if self.mode == "reduce-overhead" or (self.mode is None and self.device.type == "cuda"):
            torch.compiler.cudagraph_mark_step_begin()

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def _set_layout(self, nets: Sequence[nn.Module], optimizers, channels_last: bool) -> None:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        for net in nets:
            net.to(memory_format=fmt)  # in place: the optimisers keep the same parameters
        for opt in optimizers:
            speed.match_optimizer_layout(opt)

    def _compile(self, nets: list[nn.Module], optimizers) -> None:
        if self.channels_last is None:
            distributed = any(hasattr(net, "module") for net in nets)  # DDP's buckets keep NCHW
            self.channels_last = not distributed and speed.channels_last_is_exact(self.device)
        if self.channels_last:
            self._set_layout(nets, optimizers, True)
        how = f"backend {self.backend}" if self.backend else f"mode {self.mode or 'reduce-overhead'}"
        self.log(f"fast GPU path: compiling the four networks (torch.compile, {how}; channels-last "
                 f"{'on' if self.channels_last else 'off'}): the next iterations take a minute or more.")
        try:
            if self.backend is not None:
                compiled = [torch.compile(net, backend=self.backend) for net in nets]
            else:
                compiled = speed.compile_models(*nets, device=self.device, mode=self.mode)
        except Exception as error:  # noqa: BLE001 - reported, then eager
            self._give_up(f"torch.compile failed ({_first_line(error)})", nets, optimizers)
            return
        self.compiled = {id(net): fast for net, fast in zip(nets, compiled, strict=True)}
        self.state = "compiling"

    def _give_up(self, reason: str, nets: Sequence[nn.Module], optimizers) -> None:
        self.state, self.reason, self.compiled = "failed", reason, None
        if self.channels_last:
            self._set_layout(nets, optimizers, False)
            self.channels_last = False
        try:
            torch._dynamo.reset()  # frees the compiled code and its CUDA graph memory
        except Exception:  # noqa: BLE001, S110 - best effort: training goes on either way
            pass
        self.log(f"fast GPU path: {reason}; training continues eagerly from the same weights.")

    def _report(self, nets, optimizers) -> None:
        eager, fast, compile_s = self.times.get("eager"), self.times["compiled"], self.times["compile"]
        line = (f"fast GPU path: compiling took {compile_s:.1f} s (iterations {self.eager_steps + 1}-"
                f"{self.eager_steps + self.compile_steps}); then {1000 * fast:.1f} ms per iteration")
        if eager is None:
            self.log(line + ".")
            return
        if fast >= eager:
            self._give_up(f"compiled iterations were not faster ({1000 * fast:.1f} ms against "
                          f"{1000 * eager:.1f} ms eager)", nets, optimizers)
            return
        payback = (compile_s - self.compile_steps * fast) / (eager - fast)
        self.log(f"{line} against {1000 * eager:.1f} ms eager ({eager / fast:.2f}x); the compile time is "
                 f"won back after about {max(0, payback):,.0f} iterations.")
