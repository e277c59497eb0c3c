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


def atomic_write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file renamed over it (`os.replace`).

    A crash or a full disk leaves either the old complete file or the new one, never half of
    one (a metrics file, the split's record, the published weights' record); the temporary
    file is removed on failure, and the file gets the usual permissions, not mkstemp's 0600.
    """
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
