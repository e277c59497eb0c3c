"""Shared fixtures: tiny image folders made on the fly (nothing is downloaded or committed)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def write_images(folder: Path, count: int, size: tuple[int, int] = (20, 24), seed: int = 0,
                 suffix: str = ".png", start: int = 1) -> list[Path]:
    """`count` random RGB images named 000001.png, ... in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(start, start + count):
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"{k:06d}{suffix}"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def domains(tmp_path: Path) -> tuple[Path, Path]:
    """Folders A (3 images) and B (5 images)."""
    a, b = tmp_path / "A", tmp_path / "B"
    write_images(a, 3, seed=1)
    write_images(b, 5, seed=2)
    return a, b


@pytest.fixture
def one_thread():
    """Tiny tensors run fastest on one thread, and do not stall when other jobs hold the cores
    (OpenMP threads wait for each other on a shared 2-core machine). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(name="data")
def run_data(tmp_path: Path) -> tuple[Path, Path]:
    """Domain folders for tiny training runs: A (3 images), B (5, with other names than A's)."""
    a, b = tmp_path / "A", tmp_path / "B"
    write_images(a, 3, size=(36, 40), seed=1)
    write_images(b, 5, size=(36, 40), seed=2, start=10)
    return a, b


def tiny_run_args(data: tuple[Path, Path], out: Path, *more: str) -> list[str]:
    """`python -m utils.train` arguments of a run small enough for a test (32 px, Generator(3, 8, 1))."""
    return ["--domain-a", str(data[0]), "--domain-b", str(data[1]), "--out", str(out), "--image-size", "32",
            "--num-features", "8", "--num-residuals", "1", "--quiet", *more]


@contextlib.contextmanager
def lock_held_elsewhere(folder: Path, purpose: str = "output") -> Iterator[subprocess.Popen]:
    """Another real process holding `folder`'s lock (`utils.locks`) until the block ends."""
    script = ("import sys; from utils.locks import hold\n"
              "with hold(sys.argv[1], sys.argv[2], advice='x'):\n"
              " print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", script, str(folder), purpose], text=True,
                              cwd=Path(__file__).resolve().parent.parent, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
        holder.stdout.close()
