"""Run-time facts the notebooks print and branch on: device, fast mode, versions."""

from __future__ import annotations

import os
import platform

import torch

from utils.cli import SettingError

FAST_ENV = "CH06_FAST"


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


def env_flag(name: str) -> bool:
    """The on/off switch `$name`: 1/true/yes/on or 0/false/no/off (or unset); anything else is
    refused in one line rather than silently read as off (`CH06_FAST=maybe`)."""
    value = os.environ.get(name, "")
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise SettingError(f"{name}={value!r} is not understood: use {name}=1 (on) or {name}=0 (off) "
                       "(also true/false, yes/no, on/off), or unset it.")


def fast_mode() -> bool:
    """True when `CH06_FAST` is set to a true value: tiny data, tiny images, a few iterations."""
    return env_flag(FAST_ENV)


def pick_device(preference: str | None = None) -> torch.device:
    """CUDA when present, then Apple's MPS, else the CPU; `CH06_DEVICE` or `preference` overrides."""
    choice = preference or os.environ.get("CH06_DEVICE")
    if choice:
        return _checked_device(choice, "--device" if preference else "CH06_DEVICE")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)  # absent from some builds
    return mps is not None and mps.is_available()


def _checked_device(choice: str, where: str) -> torch.device:
    """`torch.device(choice)`, refused with one clear line when it is misspelt or not on this machine."""
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise SettingError(f"{where}={choice!r} is not a device: use cpu, cuda, cuda:1 or mps "
                           "(or leave it out for the fastest one present).") from None
    present = {"cpu": True, "cuda": torch.cuda.is_available(),
               "mps": _mps_available()}.get(device.type, True)
    if device.type == "cuda" and present and device.index is not None:
        present = device.index < torch.cuda.device_count()
    if not present:
        raise SettingError(f"{where}={choice!r}: this machine has no such device. Leave it out to use "
                           "the fastest one present, or use cpu.")
    return device


def cpu_name() -> str:
    """The processor's model name ("AMD EPYC", "Apple M2"), since speeds differ between CPUs
    of one architecture: Linux names it in /proc/cpuinfo; elsewhere `platform` says what it can."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe(device: torch.device) -> str:
    """One line a reader can paste into a question: versions and hardware."""
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = f"{cpu_name()}, {platform.machine()}, {os.cpu_count()} cores"
    return (
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"device {device} ({hardware}), fast mode {'on' if fast_mode() else 'off'}"
    )
