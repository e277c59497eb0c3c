"""Where the repository and its `files/` folder are, wherever the code runs from.

The chapter writes to `files/` relative to the working folder, which breaks as soon as a
notebook runs from `notebooks/`. Everything here is anchored to this file instead.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT: Path = Path(__file__).resolve().parent.parent


def files_dir() -> Path:
    """The data/checkpoint folder: `$CH06_FILES` if set (e.g. Google Drive on Colab), else `files/`."""
    override = os.environ.get("CH06_FILES")
    return Path(override).expanduser().resolve() if override else REPO_ROOT / "files"
