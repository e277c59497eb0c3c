"""utils.train under torchrun: 2 CPU processes (gloo) stay in sync and resume exactly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import write_images
from utils.paths import REPO_ROOT
from utils.train import HISTORY, ResumableSampler

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_agree_and_resume(tmp_path: Path):
    write_images(tmp_path / "A", 3, seed=1)
    write_images(tmp_path / "B", 5, seed=2)
    # Different data per rank, so equal weights below mean the gradients were averaged.
    shards = [ResumableSampler(3, 5, seed=1, rank=r, world_size=2).epoch_items(0) for r in (0, 1)]
    assert shards[0].tolist() != shards[1].tolist()

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               str(REPO_ROOT / "tests" / "ddp_worker.py"), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    states = {(out, r): torch.load(tmp_path / out / f"rank{r}.pt", weights_only=True)
              for out in ("whole", "split") for r in (0, 1)}
    reference = states["whole", 0]["nets"]
    for (out, rank), state in states.items():
        assert (state["iteration"], state["reason"]) == (4, "iterations"), (out, rank)
        for net, weights in state["nets"].items():
            for key, tensor in weights.items():
                assert torch.equal(tensor, reference[net][key]), (out, rank, net, key)
    gen_black = torch.load(tmp_path / "split" / "gen_black.pth", weights_only=True)
    assert all(torch.equal(gen_black[k], reference["gen_A"][k]) for k in gen_black)
    assert pd.read_csv(tmp_path / "split" / HISTORY)["iteration"].tolist() == [1, 2, 3, 4]
    assert states["split", 1]["rows"] == 0  # only rank 0 keeps and writes the history


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_to_torchrun_reaches_the_workers_which_save_a_checkpoint(tmp_path: Path):
    """torchrun forwards the signal to its workers (and repeats it); they finish the iteration, agree
    at the next log boundary and save, before torchrun's 30 s grace ends. torchrun itself then exits
    with its own SignalException traceback: that part is torchrun's (README, "When something goes
    wrong")."""
    import signal
    import time

    write_images(tmp_path / "A", 3, seed=1)
    write_images(tmp_path / "B", 5, seed=2, start=10)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "utils.train",
               "--domain-a", str(tmp_path / "A"), "--domain-b", str(tmp_path / "B"), "--out", str(out),
               "--image-size", "32", "--num-features", "8", "--num-residuals", "1", "--sample-every", "0",
               "--iterations", "100000", "--quiet"]
    torchrun = subprocess.Popen(command, env=env, cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    history = out / HISTORY
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and torchrun.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) > 5:
            break
        time.sleep(0.2)
    torchrun.send_signal(signal.SIGTERM)
    _, stderr = torchrun.communicate(timeout=240)
    assert "Termination signal (SIGTERM) received" in stderr, stderr[-3000:]
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["iteration"]
    assert saved >= 20 and saved % 20 == 0  # a log boundary, where the ranks agree to stop
    assert pd.read_csv(history)["iteration"].tolist() == list(range(1, saved + 1))
