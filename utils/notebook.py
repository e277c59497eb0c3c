"""What every notebook's first cell needs: versions, device, fast mode, run sizes.

The notebooks stay short by asking this module for their set-up and sizes, so one switch
(`CH06_FAST=1`) makes all five run in seconds on fixture data, and the default picks
sizes that fit the data and the hardware at hand.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from utils.cli import DEBUG_ENV, UserError, is_user_error, report
from utils.paths import REPO_ROOT, files_dir
from utils.run_loop import train
from utils.run_state import GEN_BLACK, GEN_BLOND
from utils.runtime import describe, fast_mode, pick_device
from utils.settings import BUILTIN, CHAPTER, CHAPTER_FAST, DemoSettings
from utils.settings import train_config as _train_config

# A notebook's run is described by the same settings type as `make demo` (`RunSettings`):
# data counts, sizes, optimiser, losses and the iteration budget, turned into a training
# config in one place (`utils.settings.train_config`). The notebooks' recipes (`CHAPTER`,
# `FAST`, `BUILTIN`) live in `utils.settings` too and are re-exported here.
FAST = CHAPTER_FAST


def run_sizes(real_data: bool, device: torch.device) -> DemoSettings:
    """Fast mode wins; real data on a GPU gets the chapter's sizes; else the built-in sizes."""
    if fast_mode():
        return FAST
    if real_data:
        return CHAPTER if device.type == "cuda" else replace(CHAPTER, image_size=128, iterations=2000)
    return BUILTIN


@dataclass(frozen=True)
class Session:
    device: torch.device
    fast: bool
    files: Path  # where data and checkpoints go; a separate `fast/` folder in fast mode
    root: Path

    def data_options(self) -> dict:
        """`ensure_data` keywords: how many built-in faces to make, how many to hold out."""
        sizes = FAST if self.fast else BUILTIN
        return {"synthetic_count": sizes.synthetic_count, "test_count": sizes.test_count}

    def data(self, kind: str = "celeba"):
        """(DataChoice, DemoSettings): the split data (made if missing; cheap when present) and
        the sizes that fit it and this device."""
        from utils.prepare import ensure_data

        choice = ensure_data(kind, root=self.files, **self.data_options())
        return choice, run_sizes(choice.real, self.device)


# Where `start(drive=True)` keeps files/ on Colab (unless CH06_FILES names another folder).
DRIVE_MOUNT = "/content/drive"
DRIVE_FILES = f"{DRIVE_MOUNT}/MyDrive/ch06"


def keep_files_on_drive() -> Path | None:
    """On Colab: mount Google Drive and point `CH06_FILES` at a folder there; the folder, or None.

    (Extra code – not in the book.) A Colab session's disk is wiped when it disconnects;
    Drive is not. With data and checkpoints on Drive, running the notebook again after a
    disconnect finds the split data and resumes training from the last checkpoint. A
    `CH06_FILES` set beforehand wins. Elsewhere this only says that it does nothing.
    """
    if "google.colab" not in sys.modules:
        print("ON_DRIVE is for Google Colab; here files/ stays where it is (set CH06_FILES to move it).")
        return None
    from google.colab import drive

    drive.mount(DRIVE_MOUNT)
    os.environ.setdefault("CH06_FILES", DRIVE_FILES)
    return files_dir()


def show_reader_error(shell, etype, value, tb, tb_offset=None) -> None:
    """What a cell shows for an error: the command line's one line for a reader's mistake
    (a photo without a face, a missing file), the usual traceback for anything else.

    (Extra code – not in the book.) An IPython custom-exception handler (`start` installs it):
    the cell still fails and stops "Run All", as any error does, but a reader reads
    `error: no face found in ... — ...` instead of 25 lines of library internals.
    `CH06_DEBUG=1` shows the full traceback of those too, as on the command line.
    """
    if is_user_error(value) and not os.environ.get(DEBUG_ENV):
        report(value, sys.stderr)
    else:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


def show_reader_errors_in_one_line() -> bool:
    """In IPython/Jupyter, show a reader's mistakes as one line (`show_reader_error`); whether
    it did (outside IPython there is nothing to change)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipykernel, in requirements.txt, brings IPython
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((UserError, OSError), show_reader_error)  # the types is_user_error accepts
    return True


def start(seed: int = 0, drive: bool = False) -> Session:
    """Print what runs where, seed everything, and return the session facts.

    `drive=True` (the first cell's `ON_DRIVE`) keeps files/ on Google Drive on Colab. In
    Jupyter, a reader's mistake in any later cell is shown as one line (`show_reader_error`).
    """
    show_reader_errors_in_one_line()
    if drive:
        keep_files_on_drive()
    device = pick_device()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    fast = fast_mode()
    files = files_dir() / "fast" if fast else files_dir()  # fast runs never mix with real ones
    session = Session(device=device, fast=fast, files=files, root=REPO_ROOT)
    print(describe(device))
    print(f"Repository: {session.root}\nData and checkpoints: {session.files}")
    if session.fast:
        print("Fast mode (CH06_FAST=1): tiny built-in data, tiny models, a few iterations.")
    return session


def train_config(sizes: DemoSettings, domain_a: Path, domain_b: Path, out: Path, **overrides):
    """A resumable `utils.train.TrainConfig` for these settings: re-running a cell continues the run.

    The same config `make demo` builds (`utils.settings.train_config`), with `resume=True`;
    `overrides` (lr=..., preset="paper", minutes=...) win.
    """
    return _train_config(sizes, [domain_a], [domain_b], out, **{"resume": True, **overrides})


def ensure_generators(session: Session, data, sizes: DemoSettings):
    """(gen_A, gen_B) from `files/gen_black.pth` and `gen_blond.pth`; trained first if missing."""
    from utils.checkpoints import load_generator

    paths = session.files / GEN_BLACK, session.files / GEN_BLOND
    if not all(p.is_file() for p in paths):
        print(f"No trained generators in {session.files}: training a pair now (notebook 03 does "
              "the same with more explanation).")
        train(train_config(sizes, data.domain_A, data.domain_B, session.files))
    return tuple(load_generator(p, session.device) for p in paths)
