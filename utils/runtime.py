"""Run-time facts the notebooks print and branch on: device, fast mode, versions."""

from __future__ import annotations

import os
import platform

import torch

FAST_ENV = "CH06_FAST"


def fast_mode() -> bool:
    """True when `CH06_FAST` is set to a true value: tiny data, tiny images, a few iterations."""
    return os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def pick_device(preference: str | None = None) -> torch.device:
    """CUDA when present, then Apple's MPS, else the CPU; `CH06_DEVICE` or `preference` overrides."""
    choice = preference or os.environ.get("CH06_DEVICE")
    if choice:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe(device: torch.device) -> str:
    """One line a reader can paste into a question: versions and hardware."""
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return (
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"device {device} ({hardware}), fast mode {'on' if fast_mode() else 'off'}"
    )
