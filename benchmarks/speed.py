"""Pairs per second: the project's training iteration against the chapter's loop body.

    python benchmarks/speed.py                      # CPU: 64, 128, 256 px, batch 1
    python benchmarks/speed.py --sizes 64 --extras unfused bf16 compile
    python benchmarks/speed.py --device cuda        # 256 px, batch 1 and larger batches
    python benchmarks/speed.py --device cuda --extras fast --picked-batch   # the --fast-gpu path
    python benchmarks/speed.py --sizes 256 --threads 1 --extras fp32 --matmul 2048 --profile  # bf16 vs fp32
    python benchmarks/speed.py --nets demo --sizes 64 --batch-sizes 8 --threads 1 --extras fp32  # make demo's

Both loops run in ONE process, ALTERNATING (each round: chapter k iterations, then ours
k iterations, then any extras), after a warm-up that is not timed, on the same networks
(full size, same initial weights), losses, batch and data. The ratio is the median over
rounds of (ours / chapter) within a round, so load from other processes, which shifts
both legs of a round alike, mostly cancels. A table of figures is printed; nothing is
asserted (timings are not tests).

Legs:
  chapter   benchmarks/chapter_loop.py: the chapter's body (fp32 on a CPU, discriminator
            gradients computed in the generator step, plain Adam, `.item()` each batch).
  ours      what `ch06util.train_epoch` / `utils.train` run by default: `train_step`,
            `speed.tune_backends`, `speed.to_fast_layout`, `speed.make_optimizers` (fused
            Adam), `default_autocast_dtype` (bf16 on CUDA and on CPUs with AMX or
            AVX512-BF16, fp32 on other CPUs).
  extras    unfused (ours with plain Adam: isolates the frozen discriminators),
            fp32 (ours in float32: `--no-mixed-precision`),
            bf16 (bf16 autocast forced, even where the CPU emulates it),
            channels_last (refused where `speed.channels_last_is_exact` fails),
            compile (`speed.compile_models`; the warm-up time is the compile time),
            fast (`utils.fast_gpu.FastStep`, what `--fast-gpu` runs: compiled with CUDA
            graphs, channels-last where exact; compiled from its first iteration, so the
            warm-up time is the compile time; on a CPU it says why it stays eager).

`--matmul N` also times N x N matrix products in float32 and in bfloat16 (alternating, in
the same rounds) and counts each leg's floating-point operations per iteration
(`torch.utils.flop_counter`, in one more untimed iteration), so the table says what share of
the machine's matmul rate in the leg's type each leg reaches (per round, against the product
timed in the same round: the median of those shares, robust to load that comes and goes).
`--profile` profiles one more iteration of `ours` (and `fp32`) per size: the operations that
take the time, and the types they computed in (which ones autocast leaves in float32).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.chapter_loop import chapter_optimizers, chapter_scaler, chapter_step  # noqa: E402
from utils import ch06util as ch  # noqa: E402
from utils import fast_gpu, speed  # noqa: E402
from utils.demo import DEMO  # noqa: E402

EXTRAS = ("unfused", "fp32", "bf16", "channels_last", "compile", "fast")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
CPU_ITERS = {64: 5, 128: 3, 256: 1}  # about 3 s of work per leg and round on a 2-core Xeon
EPOCH_PAIRS = 48_472  # one epoch of the chapter's data set (its black/blond split)


# ------------------------------------------------------------------------- machine
def cpu_model_and_flags() -> tuple[str, set[str]]:
    """CPU model name and instruction-set flags (Linux /proc/cpuinfo; elsewhere best effort)."""
    cpuinfo = Path("/proc/cpuinfo")
    model, flags = platform.processor() or platform.machine(), set()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    return model, flags


def describe_machine(device: torch.device) -> list[str]:
    model, flags = cpu_model_and_flags()
    shown = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in CPU_FLAGS) if flags else "unknown"
    lines = [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"torch {torch.__version__}, python {platform.python_version()}, {platform.system()}",
        f"CPU: {model}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()} "
        f"(interop {torch.get_num_interop_threads()}), capability "
        f"{torch.backends.cpu.get_cpu_capability()}",
        f"CPU flags: {shown}; native bf16 (ch06util.cpu_has_bf16): {ch.cpu_has_bf16()}, "
        f"oneDNN's bf16 claim: {bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}",
    ]
    if device.type == "cuda":
        lines.append(f"GPU: {torch.cuda.get_device_name(device)}, compute capability "
                     f"{'.'.join(map(str, torch.cuda.get_device_capability(device)))}, native bf16 "
                     f"{ch.cuda_has_native_bf16(device)}, autocast {ch.default_autocast_dtype(device)}")
    return lines


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


# ------------------------------------------------------------------------- legs
def make_nets(device: torch.device, sizes: str = "chapter") -> list[nn.Module]:
    """disc_A, disc_B, gen_A, gen_B: full size as in listing 6.7, or `make demo`'s (`utils.demo.DEMO`)."""
    torch.manual_seed(0)
    if sizes == "demo":
        d = DEMO
        nets = [ch.Discriminator(3, d.disc_features), ch.Discriminator(3, d.disc_features),
                ch.Generator(3, d.num_features, d.num_residuals, variant=d.generator),
                ch.Generator(3, d.num_features, d.num_residuals, variant=d.generator)]
    else:
        nets = [ch.Discriminator(3), ch.Discriminator(3), ch.Generator(3), ch.Generator(3)]
    return [ch.weights_init(net).to(device) for net in nets]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_leg(name: str, base: list[nn.Module], A: torch.Tensor, B: torch.Tensor,
              device: torch.device) -> Callable[[], object]:
    """A closure running one training iteration of leg `name` on its own copy of the nets."""
    nets = [copy.deepcopy(net) for net in base]
    l1, mse = nn.L1Loss(), nn.MSELoss()
    if name == "chapter":
        opt_disc, opt_gen = chapter_optimizers(*nets)
        d_scaler, g_scaler = chapter_scaler(device.type), chapter_scaler(device.type)
        return lambda: chapter_step(A, B, *nets, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler)

    speed.tune_backends(device)
    if name == "fast":  # its own layout choice, at its first (compiling) iteration
        opt_disc, opt_gen = speed.make_optimizers(*(n.to(device) for n in nets), device=device)
        dtype = ch.default_autocast_dtype(device)
        d_scaler, g_scaler = ch.make_grad_scaler(device, dtype), ch.make_grad_scaler(device, dtype)
        step = fast_gpu.FastStep(ch.train_step, device, eager_steps=0,
                                 log=lambda line: print(f"    [{tuple(A.shape)}] {line}", flush=True))
        return lambda: step(A, B, *nets, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler,
                            autocast_dtype=dtype)
    channels_last = True if name == "channels_last" else None
    nets = [speed.to_fast_layout(net, device, channels_last=channels_last) for net in nets]
    a = speed.to_fast_layout(A, device, channels_last=channels_last)
    b = speed.to_fast_layout(B, device, channels_last=channels_last)
    opt_disc, opt_gen = speed.make_optimizers(*nets, device=device, fused=name != "unfused")
    dtype = leg_dtype(name, device)
    d_scaler, g_scaler = ch.make_grad_scaler(device, dtype), ch.make_grad_scaler(device, dtype)
    if name == "compile":
        nets = speed.compile_models(*nets, device=device)
    return lambda: ch.train_step(a, b, *nets, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler,
                                 autocast_dtype=dtype)


def time_iters(step: Callable[[], object], iters: int, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    return time.perf_counter() - start


def leg_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The type a leg's convolutions compute in (None: float32)."""
    if name == "chapter":
        return torch.float16 if device.type == "cuda" else None
    return {"bf16": torch.bfloat16, "fp32": None}.get(name, ch.default_autocast_dtype(device))


def matmul_leg(n: int, dtype: torch.dtype | None, device: torch.device) -> tuple[Callable[[], object], int]:
    """A closure multiplying two n x n matrices (under autocast for bf16) and its FLOPs."""
    gen = torch.Generator().manual_seed(2)
    a, b = (torch.randn(n, n, generator=gen).to(device) for _ in range(2))
    autocast = torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    def step() -> None:
        with autocast:
            a @ b
    return step, 2 * n ** 3


def count_flops(step: Callable[[], object]) -> int:
    """Floating-point operations of one call of `step` (it runs once, untimed)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def profile_step(name: str, step: Callable[[], object], top: int = 14) -> None:
    """Print the operations that take one iteration's CPU time, with the types they compute in."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:  # the trace is where the input types are
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        types: dict[str, set[str]] = {}
        for event in json.loads(trace.read_text())["traceEvents"]:
            found = event.get("args", {}).get("Input type") or []
            types.setdefault(event.get("name", ""), set()).update(
                t for t in found if t in ("float", "c10::BFloat16", "c10::Half", "double"))
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    short = {"float": "fp32", "c10::BFloat16": "bf16", "c10::Half": "fp16", "double": "fp64"}
    print(f"\n  profile of one {name} iteration ({total / 1e6:.2f} s of CPU time):")
    print("  | operation | share of CPU time | input types |\n  |---|---:|---|")
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        seen = " ".join(sorted(short[t] for t in types.get(event.key, ()))) or "-"
        print(f"  | {event.key} | {event.self_cpu_time_total / total:.1%} | {seen} |")
    fp32_only = sum(e.self_cpu_time_total for e in events if types.get(e.key) == {"float"})
    print(f"  operations that saw only float32 inputs: {fp32_only / total:.1%} of the time", flush=True)


def bench_size(size: int, batch: int, legs: list[str], rounds: int, iters: int, warmup: int,
               device: torch.device, base: list[nn.Module], matmul: int | None = None,
               profile: bool = False) -> tuple[list[dict], list[dict]]:
    """Rows per leg (pairs/s, ratio to the chapter; FLOPs with `matmul`) and per matmul type."""
    gen = torch.Generator().manual_seed(1)
    A = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)
    B = (torch.rand(batch, 3, size, size, generator=gen) * 2 - 1).to(device)
    steps, rows = {}, {}
    for name in legs:
        rows[name] = {"leg": name, "size": size, "batch": batch, "rates": [], "note": "",
                      "dtype": leg_dtype(name, device)}
        try:
            steps[name] = build_leg(name, base, A, B, device)
            if matmul:  # one more untimed iteration, counted
                rows[name]["flops"] = count_flops(steps[name])
            rows[name]["warmup_s"] = time_iters(steps[name], warmup, device)
            print(f"    {name}: warm-up ({warmup} iterations) {rows[name]['warmup_s']:.1f} s", flush=True)
        except (ValueError, RuntimeError) as error:  # e.g. channels-last refused here
            rows[name]["note"] = f"not run: {str(error).splitlines()[0][:90]}"
            steps.pop(name, None)
    products = {dtype: matmul_leg(matmul, dtype, device)
                for dtype in ((None, torch.bfloat16) if matmul else ())}
    reps = max(1, round(75e9 / (2 * matmul ** 3))) if matmul else 0  # about 1 s at a core's fp32 rate
    gflops: dict[torch.dtype | None, list[float]] = {dtype: [] for dtype in products}
    for product, _ in products.values():
        time_iters(product, 2, device)
    for _ in range(rounds):
        for name, step in steps.items():
            rows[name]["rates"].append(iters * batch / time_iters(step, iters, device))
        for dtype, (product, flops) in products.items():
            gflops[dtype].append(reps * flops / time_iters(product, reps, device) / 1e9)
    chapter = rows.get("chapter", {}).get("rates", [])
    peak = {dtype: statistics.median(rates) for dtype, rates in gflops.items()}
    for row in rows.values():
        row["pairs_s"] = statistics.median(row["rates"]) if row["rates"] else float("nan")
        per_round = [r / c for r, c in zip(row["rates"], chapter, strict=False)]
        row["ratio"] = statistics.median(per_round) if per_round else float("nan")
        if "flops" in row:  # the share per round, against the product timed in the same round
            row["gflops"] = row["flops"] * row["pairs_s"] / batch / 1e9
            peaks = gflops.get(row["dtype"], [])
            row["share"] = statistics.median(
                row["flops"] * r / batch / 1e9 / p for r, p in zip(row["rates"], peaks, strict=False)
            ) if peaks and row["rates"] else float("nan")
    matmul_rows = [{"leg": f"matmul {matmul}x{matmul} {'bf16' if dtype else 'fp32'}", "rates": rates,
                    "gflops": peak[dtype]} for dtype, rates in gflops.items()]
    if profile:
        for name in ("ours", "fp32"):
            if name in steps:
                profile_step(f"{name} ({size} px, batch {batch})", steps[name])
    return list(rows.values()), matmul_rows


# ------------------------------------------------------------------------- loader
def write_faces(folder: Path, count: int, seed: int) -> None:
    """178x218 JPEGs with smooth shapes and mild noise (decode cost like a real photo)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:218, 0:178].astype(np.float32)
    for k in range(1, count + 1):
        cy, cx, r = rng.uniform(80, 140), rng.uniform(60, 120), rng.uniform(40, 80)
        face = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)[..., None]
        base = rng.uniform(0, 255, 3) * (1 - yy[..., None] / 436) + face * rng.uniform(-80, 80, 3)
        pixels = np.clip(base + rng.normal(0, 6, (218, 178, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{k:06d}.jpg", quality=95)


def bench_loader(size: int, workers: int, device: torch.device, count: int) -> tuple[float, float]:
    """(pairs/s after the first batch, seconds to the first batch) of the chapter's loader."""
    with tempfile.TemporaryDirectory() as tmp:
        write_faces(Path(tmp) / "A", count, seed=1)
        write_faces(Path(tmp) / "B", count, seed=2)
        data = ch.LoadData(Path(tmp) / "A", Path(tmp) / "B", ch.make_transform(size))
        loader = torch.utils.data.DataLoader(
            data, batch_size=1, shuffle=True, **speed.loader_options(device, workers))
        start = time.perf_counter()
        batches = iter(loader)
        next(batches)
        first = time.perf_counter() - start
        start = time.perf_counter()
        seen = sum(1 for _ in batches)
        rate = seen / (time.perf_counter() - start)
        del batches, loader
    return rate, first


# ------------------------------------------------------------------------- main
def dtype_name(dtype: torch.dtype | None) -> str:
    return "fp32" if dtype is None else {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def print_table(rows: list[dict], matmul_rows: list[dict] = ()) -> None:
    flops = any("flops" in row for row in rows)
    extra = " GFLOP/iteration | GFLOP/s | share of its type's matmul rate |" if flops else ""
    print("\n| size | batch | leg | type | pairs/s (median) | per round | ratio to chapter | warm-up s "
          f"| epoch min |{extra}")
    print("|---:|---:|---|---|---:|---|---:|---:|---:|" + ("---:|---:|---:|" if flops else ""))
    for row in rows:
        rates = " ".join(f"{r:.3f}" for r in row["rates"]) or row["note"]
        more = (f" {row['flops'] / 1e9:.0f} | {row['gflops']:.1f} | {row['share']:.0%} |"
                if flops and "flops" in row else (" | | |" if flops else ""))
        print(f"| {row['size']} | {row['batch']} | {row['leg']} | {dtype_name(row['dtype'])} "
              f"| {row['pairs_s']:.3f} | {rates} | {row['ratio']:.2f}x "
              f"| {row.get('warmup_s', float('nan')):.1f} | {EPOCH_PAIRS / row['pairs_s'] / 60:.1f} |{more}",
              flush=True)
    if matmul_rows:
        print("\n| product (same rounds) | GFLOP/s (median) | per round |\n|---|---:|---|")
        for row in matmul_rows:
            print(f"| {row['leg']} | {row['gflops']:.1f} | {' '.join(f'{r:.1f}' for r in row['rates'])} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="image sizes (default: 64 128 256 on CPU, 256 on CUDA)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="batch sizes (default: 1 on CPU; 1 4 16 on CUDA)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=None,
                        help="iterations per leg and round (default: 5/3/1 at 64/128/256 px "
                        "on CPU, 20 on CUDA)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed iterations per leg (default: 1 on CPU, 5 on CUDA)")
    parser.add_argument("--nets", choices=("chapter", "demo"), default="chapter",
                        help="network sizes: the chapter's (default) or make demo's (16 wide, 4 blocks)")
    parser.add_argument("--matmul", type=int, metavar="N",
                        help="also time N x N products in fp32 and bf16 and count each leg's FLOPs")
    parser.add_argument("--profile", action="store_true",
                        help="profile one iteration of ours (and fp32) per size: time and types per op")
    parser.add_argument("--extras", nargs="*", default=[], choices=EXTRAS,
                        help="extra legs to time beside chapter and ours")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for every leg (default: PyTorch's, one per core); "
                        "1 keeps a shared, busy machine from stalling both legs")
    parser.add_argument("--picked-batch", action="store_true",
                        help="also time the batch size --fast-gpu picks on this GPU (after --batch-sizes)")
    parser.add_argument("--loader-images", type=int, default=48,
                        help="JPEGs per domain for the loader test (0 skips it)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    sizes = args.sizes or ([256] if cuda else [64, 128, 256])
    batches = args.batch_sizes or ([1, 4, 16] if cuda else [1])
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    legs = ["chapter", "ours", *args.extras]
    if args.threads:
        torch.set_num_threads(args.threads)
    print("\n".join(describe_machine(device)))
    print(f"load average before: {load_average()}")
    print(f"command: python benchmarks/speed.py {' '.join(sys.argv[1:] if argv is None else argv)}")

    base = make_nets(device, args.nets)
    if args.picked_batch and cuda:
        from utils.train import TrainConfig

        config = TrainConfig(domain_a=".", domain_b=".", out=".", fast_gpu=True)
        total, fixed, per_pair = fast_gpu.measure_memory(config, device)
        batch, bound = fast_gpu.pick_batch_size(config.lr, total, fixed, per_pair)
        print(f"--fast-gpu picks batch {batch} here (bounded by {bound}; {per_pair / 2**20:.0f} MiB a pair, "
              f"{fixed / 2**20:.0f} MiB fixed, {total / 2**30:.0f} GiB), lr {speed.scaled_lr(batch):.3g}")
        batches = [*batches, batch] if args.batch_sizes else [1, batch]
    rows: list[dict] = []
    matmul_rows: list[dict] = []
    for size in sizes:
        for batch in batches:
            iters = args.iters or (20 if cuda else CPU_ITERS.get(size, max(1, (128 // size) ** 2)))
            start = time.perf_counter()
            block, products = bench_size(size, batch, legs, args.rounds, iters, warmup, device, base,
                                         matmul=args.matmul, profile=args.profile)
            rows += block
            matmul_rows += products
            print(f"  {size} px, batch {batch}: {args.rounds} rounds x {iters} iterations per "
                  f"leg in {time.perf_counter() - start:.0f} s", flush=True)
            if len(sizes) * len(batches) > 1:  # kept in the log if a later block runs out of time
                print_table(block, products)

    print(f"\nload average after: {load_average()}")
    print_table(rows, matmul_rows)

    for leg in ("ours", "fast"):
        target = [r for r in rows if r["leg"] == leg and r["size"] == 256 and r["batch"] == 1]
        if target:
            ratio = target[0]["ratio"]
            print(f"\ntarget >= 3x the chapter at 256 px, batch 1, {leg}: {ratio:.2f}x -> "
                  f"{'met' if ratio >= 3 else 'NOT met'}")
    for row in rows:
        if row["leg"] == "fast" and row["size"] == 256 and row["batch"] > 1 and row["rates"]:
            minutes = EPOCH_PAIRS / row["pairs_s"] / 60
            print(f"one CelebA epoch ({EPOCH_PAIRS:,} pairs) on the fast path at batch {row['batch']}: "
                  f"{minutes:.1f} min (target on an H200: 2.5 min or less) -> "
                  f"{'met' if minutes <= 2.5 else 'NOT met'}")
    ours = [r for r in rows if r["leg"] == "ours" and r["rates"]]
    if len(batches) > 1 and ours:
        best = max(ours, key=lambda r: r["pairs_s"])
        chapter_b1 = [r for r in rows if r["leg"] == "chapter" and r["batch"] == 1
                      and r["size"] == best["size"]]
        if chapter_b1:
            print(f"best batch size at {best['size']} px: {best['batch']} "
                  f"({best['pairs_s']:.1f} pairs/s, {best['pairs_s'] / chapter_b1[0]['pairs_s']:.1f}x "
                  "the chapter's batch 1; learning rate: see speed.scaled_lr)")
            print(f"one CelebA epoch ({EPOCH_PAIRS:,} pairs) at that rate: "
                  f"{EPOCH_PAIRS / best['pairs_s'] / 60:.1f} min (target on an H200: 2.5 min or less)")

    if args.loader_images > 0:
        workers = speed.recommended_workers(device)
        print("\n| loader (decode + augment), size | workers | pairs/s | first batch s | "
              "ours training pairs/s |")
        print("|---:|---:|---:|---:|---:|")
        for size in sizes:
            train = next((r["pairs_s"] for r in ours if r["size"] == size), float("nan"))
            for n in sorted({0, workers}):
                rate, first = bench_loader(size, n, device, args.loader_images)
                print(f"| {size} | {n} | {rate:.1f} | {first:.2f} | {train:.3f} |", flush=True)


if __name__ == "__main__":
    main()
