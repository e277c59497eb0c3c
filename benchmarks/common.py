"""Options every quality benchmark shares: where it runs, on how many threads, in which precision.

`--fp32` matters on a GPU only: it turns TF32 off, so that a GPU run computes what a CPU run
computes (up to summation order) and its curve can stand for the CPU's (benchmarks/README.md).
"""

from __future__ import annotations

import argparse

import torch

from utils.runtime import describe, pick_device


def add_machine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu, cuda, mps (default: the fastest present)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--fp32", action="store_true",
                        help="float32 without TF32 on a GPU too, so its run stands for a CPU run")


def apply_machine_options(args: argparse.Namespace) -> torch.device:
    """Set the threads and precision `args` ask for; print and return the device."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.fp32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    device = pick_device(args.device)
    print(describe(device), f"threads {torch.get_num_threads()}")
    return device
