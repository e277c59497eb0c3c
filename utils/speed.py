"""Speed settings for CycleGAN training, each measured against the chapter's loop.

Every function here has one job and is safe to call on any device: the fast path is taken
only where the hardware makes it fast, and nothing changes the chapter's math beyond
floating-point rounding (tests/test_speed.py checks that). The figures behind each choice
are in benchmarks/README.md (`python benchmarks/speed.py` reproduces them).

What measured faster and is the default:

* Fused Adam (one kernel per step over all parameters), on CPU and CUDA.
* The discriminators' weights get no gradient in the generators' step (done in
  `ch06util.train_step`; the chapter computed those gradients and threw them away).
* CUDA: `cudnn.benchmark`, bfloat16 autocast (float16 + scaler on older GPUs, see
  `ch06util.pick_precision`), pinned memory, non-blocking copies, loader workers.
* CPUs with AMX or AVX512-BF16: bfloat16 autocast (1.9-2.5x the chapter's float32 step,
  same held-out scores; `ch06util.pick_precision`).

What measured slower on the CPU, or cannot be measured here, and so is a flag:

* channels-last memory format (`to_fast_layout(..., channels_last=True)`): InstanceNorm
  copies channels-last tensors back to NCHW around every norm layer, which made a CPU
  iteration several times slower, and on the CPU PyTorch 2.14.1 computes wrong gradients
  for it, in float32 and bfloat16 alike (`channels_last_is_exact` checks, and the flag is
  refused where it fails); with bfloat16 it was slower too.
* bfloat16 autocast on a CPU without AVX512-BF16/AMX (emulated: about 3x slower).
* `torch.compile` (`compile_models`): minutes of compiling for a small gain on a CPU; on
  CUDA, `mode="reduce-overhead"` (CUDA graphs) is for the launch-bound batch-1 case.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import torch
from torch import nn

T = TypeVar("T", nn.Module, torch.Tensor)

# Adam as in listing 6.7.
CHAPTER_LR = 1e-5
CHAPTER_BETAS = (0.5, 0.999)


def tune_backends(device: torch.device | str) -> None:
    """Switch on the backend settings that pay off on `device` (call once, before training).

    CUDA: `cudnn.benchmark` picks the fastest convolution algorithm for the (fixed) image
    size once, then reuses it. CPU: oneDNN (mkldnn) stays on (off measured about 1.7x
    slower); the thread count is left at PyTorch's default (one per physical core): one
    thread measured about 1.6x slower on the 2-core benchmark machine when lightly loaded
    (on a machine other jobs keep busy, one thread is faster: benchmarks/README.md).
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    elif device.type == "cpu" and torch.backends.mkldnn.is_available():
        torch.backends.mkldnn.enabled = True


def channels_last_is_exact(device: torch.device | str) -> bool:
    """Whether channels-last gives this model's gradients here (a tiny check, cached).

    On PyTorch 2.14.1 (CPU) the input gradient of an InstanceNorm that feeds a
    channels-last convolution comes out wrong (relative error above 1, not rounding), so a
    channels-last generator learns from wrong gradients, in float32 and under bfloat16
    autocast alike (bf16: 1.4 relative error against 3e-3 for NCHW). The check compares
    that pattern with the NCHW result in both precisions instead of assuming either way.
    """
    return _channels_last_is_exact(str(torch.device(device)))


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Plain float32 products on a GPU inside the block (TF32 keeps 10 mantissa bits); restored after.

    For comparisons that must see only float32 rounding: a GPU against a CPU, one layout
    against another. Training keeps PyTorch's defaults.
    """
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


@functools.cache
def _channels_last_is_exact(device_name: str) -> bool:
    # Without TF32: its products differ between the two layouts' convolution algorithms by
    # ~1e-3, which would read as a layout bug. This checks the layout.
    with no_tf32():
        return _compare_layouts(torch.device(device_name))


def _compare_layouts(device: torch.device) -> bool:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 6, 6, generator=gen).to(device)
    conv = nn.Conv2d(4, 3, 3, padding=1).to(device)
    weights = torch.randn(1, 3, 6, 6, generator=gen).to(device)

    def input_grad(net: nn.Module, inp: torch.Tensor, bf16: bool) -> torch.Tensor:
        inp = inp.clone().requires_grad_(True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(inp)
        (out.float() * weights).sum().backward()
        return inp.grad.float()

    conv_cl = nn.Conv2d(4, 3, 3, padding=1).to(device)
    conv_cl.load_state_dict(conv.state_dict())
    conv_cl = conv_cl.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    for bf16 in (False, True) if device.type in ("cpu", "cuda") else (False,):
        plain = input_grad(nn.Sequential(nn.InstanceNorm2d(4), conv), x, bf16)
        fast = input_grad(nn.Sequential(nn.InstanceNorm2d(4), conv_cl), x_cl, bf16)
        if bf16:  # bfloat16 rounds to ~3e-3 in either layout; the defect is an error above 1
            same = (fast - plain).norm() <= 0.05 * plain.norm()
        else:
            same = torch.allclose(plain, fast, rtol=1e-3, atol=1e-4)
        if not same:
            return False
    return True


def prefers_channels_last(device: torch.device | str) -> bool:
    """Whether channels-last is the default layout on `device`: nowhere, for this model.

    On the CPU it measured several times slower (InstanceNorm copies channels-last
    tensors back to NCHW on every call) and gives wrong gradients on PyTorch 2.14.1
    (`channels_last_is_exact`). On CUDA it is unmeasured, so it stays a flag there.
    """
    del device
    return False


def to_fast_layout(obj: T, device: torch.device | str, *, channels_last: bool | None = None) -> T:
    """Move a model or an image batch to `device` in the memory format that is fastest there.

    `channels_last=None` uses `prefers_channels_last(device)`; True forces it, after
    `channels_last_is_exact(device)` confirms that it computes the right gradients here
    (a ValueError says why not otherwise). Tensors move with `non_blocking=True`
    (overlaps with compute when the source is pinned).
    """
    device = torch.device(device)
    use_cl = prefers_channels_last(device) if channels_last is None else channels_last
    if use_cl and not channels_last_is_exact(device):
        raise ValueError(
            f"channels-last gives wrong InstanceNorm gradients on {device} with torch "
            f"{torch.__version__} (see utils/speed.py: channels_last_is_exact); train without "
            "the channels-last option."
        )
    if isinstance(obj, nn.Module):
        obj = obj.to(device)
        return obj.to(memory_format=torch.channels_last) if use_cl else obj
    obj = obj.to(device, non_blocking=True)
    if use_cl and obj.dim() == 4:
        return obj.contiguous(memory_format=torch.channels_last)
    return obj


def _adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float],
          fused: bool) -> torch.optim.Adam:
    params = list(params)
    if fused:
        try:
            return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass  # a device or dtype the fused kernel does not support: the plain one works
    return torch.optim.Adam(params, lr=lr, betas=betas)


def supports_fused_adam(device: torch.device | str) -> bool:
    """Whether this PyTorch has a fused Adam kernel for `device` (CPU and CUDA do)."""
    return torch.device(device).type in {"cpu", "cuda"}


def make_optimizers(disc_A: nn.Module, disc_B: nn.Module, gen_A: nn.Module, gen_B: nn.Module,
                    lr: float = CHAPTER_LR, betas: tuple[float, float] = CHAPTER_BETAS,
                    device: torch.device | str | None = None,
                    fused: bool | None = None) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Listing 6.7's optimizers: one Adam over both discriminators, one over both generators.

    Fused (one kernel for all parameters, same update rule) where the device has it:
    measured several times faster per optimizer step on the CPU than the chapter's plain
    Adam. `device` defaults to where the generators' parameters are. Returns
    `(opt_disc, opt_gen)`.
    """
    if device is None:
        device = next(gen_A.parameters()).device
    if fused is None:
        fused = supports_fused_adam(device)
    opt_disc = _adam([*disc_A.parameters(), *disc_B.parameters()], lr, betas, fused)
    opt_gen = _adam([*gen_A.parameters(), *gen_B.parameters()], lr, betas, fused)
    return opt_disc, opt_gen


def recommended_workers(device: torch.device | str) -> int:
    """DataLoader worker processes: 0 on a CPU, several on a GPU.

    On a CPU an iteration takes 0.5-10 s and decoding a pair of faces a few milliseconds,
    so loading in the main process costs well under 1% and spares the worker start-up
    (seconds on Windows and macOS, which spawn). A GPU iteration takes milliseconds, so
    loading must run beside it: one worker per spare core, at most 8.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def loader_options(device: torch.device | str, num_workers: int | None = None) -> dict[str, Any]:
    """Keyword arguments for `DataLoader` besides the data set, batch size and shuffle.

    Pinned memory only where there is a GPU to copy to (on a CPU it is wasted work and
    recent PyTorch warns); workers stay alive between epochs.
    """
    device = torch.device(device)
    workers = recommended_workers(device) if num_workers is None else num_workers
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": device.type == "cuda"}
    if workers > 0:
        options["persistent_workers"] = True
        options["prefetch_factor"] = 4
    return options


def compile_models(*models: nn.Module, device: torch.device | str,
                   mode: str | None = None) -> list[nn.Module]:
    """`torch.compile` each model (an option, not a default: see the module docstring).

    On CUDA the default mode is "reduce-overhead" (CUDA graphs: one launch replays the
    whole network, which is what batch 1 needs); elsewhere inductor's default. Compiled
    models share their parameters (and state_dict keys, under `_orig_mod.`) with the
    originals: save the originals.
    """
    device = torch.device(device)
    if mode is None:
        mode = "reduce-overhead" if device.type == "cuda" else "default"
    return [torch.compile(model, mode=mode) for model in models]


def scaled_lr(batch_size: int, lr: float = CHAPTER_LR) -> float:
    """The learning rate for `batch_size` > 1 under the linear scaling rule (lr x batch).

    The chapter trains with batch 1 and lr 1e-5. A larger batch averages the gradient over
    more faces, so each step carries less noise; with Adam (which normalises the step) a
    common starting point is to scale lr linearly and check the samples, or to keep 1e-5
    and train for as many *pairs* (not steps) as before. Either way, batch size changes
    the optimisation, unlike every other option here.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return lr * batch_size


def match_optimizer_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each optimiser state tensor its parameter's memory layout (after channels-last).

    Adam's running averages are made in the layout of their parameter; after a layout
    change, or after loading a checkpoint written in the other layout, they would no longer
    match it, and the fused kernels pair elements by memory order: on the CPU a channels-last
    average against an NCHW parameter gave a wrong update (as large as the step), not an error.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    optimizer.state[p][key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def pick_cpu_threads(step: Callable[[], Any], *, repeats: int = 3) -> int:
    """Time `step` at PyTorch's default thread count and at one thread; keep the faster (extra code).

    Why measure instead of assuming: at the demo's small sizes a training step is thousands of
    short parallel regions. On idle cores two threads were 1.5x faster than one; when another
    program wants a core, the two OpenMP threads wait for each other at every region (spinning,
    or sleeping in the kernel, which `top` shows as system time) and one thread was 5.7x faster
    (benchmarks/README.md, "Where `make demo`'s CPU time goes"). Only the thread count changes,
    so it is the same on every OS; with one core there is nothing to choose.
    """
    default = torch.get_num_threads()
    if default <= 1:
        return default
    seconds = {}
    for threads in (default, 1):
        torch.set_num_threads(threads)
        step()  # warm-up: oneDNN picks its kernels for this thread count
        started = time.perf_counter()
        for _ in range(repeats):
            step()
        seconds[threads] = time.perf_counter() - started
    best = min(seconds, key=seconds.__getitem__)
    torch.set_num_threads(best)
    return best
