"""Where the repository and its `files/` folder are, wherever the code runs from.

The chapter writes to `files/` relative to the working folder, which breaks as soon as a
notebook runs from `notebooks/`. Everything here is anchored to this file instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from utils.cli import SettingError

REPO_ROOT: Path = Path(__file__).resolve().parent.parent


FILES_ENV = "CH06_FILES"


def files_dir() -> Path:
    """The data/checkpoint folder: `$CH06_FILES` if set (e.g. Google Drive on Colab), else `files/`.

    A `CH06_FILES` that is a file (or lies under one) is refused in one line here, before any
    command meets it as an operating-system error half way through its work."""
    override = os.environ.get(FILES_ENV, "").strip()
    if not override:
        return REPO_ROOT / "files"
    path = Path(override).expanduser().resolve()
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                where = "is a file" if part == path else f"lies under {part}, which is a file"
                raise SettingError(f"{FILES_ENV}={override!r} {where}, not a folder: point it at a "
                                   "folder (it is created if missing), or unset it to use files/.")
            break
    return path


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
