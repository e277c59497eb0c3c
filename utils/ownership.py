"""Which files in a folder this project wrote, so that a command replaces only its own.

(Extra code – not in the book.) One rule for every command that writes (training, the demo,
the published weights' fetch, `checkpoints extract`, `translate`, `evaluate --json`, the
split): **a command writes into a folder only files it created or marked as its own; a
different file under one of its names is refused, never overwritten.** A reader's own
`gen_black.pth`, `metrics.json` or `loss_curves.png` therefore survives any command run
into the same folder by mistake, and the message says what to do (another folder, move the
file, or `--force` where a command offers it).

How a file is known to be ours: the folder keeps a hidden record, `.ch06-owned.json`, with
one entry per file a command wrote there: the command's name and the file's size,
modification time (ns) and inode number, read just after writing it. A file counts as that
command's only while all three still match, so a file copied over it, saved over it by an
editor, or put there under the same name after a delete is the reader's. Checking costs one
`lstat` per file; nothing is read. The split keeps its records beside the folders it fills
(`utils.split_record`) with the same numbers (`key_of`), so that the chapter's `os.listdir`
of a face folder sees faces only.

`output_folder` and `output_file` turn a path that cannot be written as asked (a file given
where a folder is meant, a folder given for a file, a path through a file) into one clear
line instead of the operating system's `[Errno 20] Not a directory`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from utils.cli import UserError
from utils.paths import atomic_write_text

RECORD = ".ch06-owned.json"  # inside each folder a command writes into
_VERSION = 1

Key = str  # "size:mtime_ns:inode"


class NotOursError(UserError, FileExistsError):
    """A file of the name a command writes is there, and the command did not write it."""


class OutputPathError(UserError, NotADirectoryError):
    """An output path that cannot be used as asked: a file where a folder is meant, or the reverse."""


def key_of(stat: os.stat_result) -> Key:
    """The numbers that identify a file we wrote: size, modification time (ns) and inode."""
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"


def same_content_source(a: os.stat_result, b: os.stat_result) -> bool:
    """Whether two files are one (a hard link) or a copy with the same size and time (`copy2`)."""
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) and a.st_ino:
        return True
    return (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns)


def read_record(path: Path) -> dict[str, Any] | None:
    """The `files` mapping of a JSON record, or None when there is none or it is damaged
    (a damaged record vouches for nothing)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return files if isinstance(files, dict) else None


def write_record(path: Path, about: str, files: dict[str, Any], *, compact: bool = False) -> None:
    """Write a record atomically (`paths.atomic_write_text`): the old one or the new one, never half."""
    body = {"about": about, "version": _VERSION, "files": dict(sorted(files.items()))}
    text = json.dumps(body, separators=(",", ":")) if compact else json.dumps(body, indent=1)
    atomic_write_text(path, text)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


class OwnedFiles:
    """The record of one folder: for each file a command wrote there, which command and its key.

    `save` merges with what is on disk at that moment (another command may have written into
    the same folder meanwhile), so two commands writing different files do not lose each
    other's entries.
    """

    def __init__(self, folder: Path, entries: dict[str, dict[str, str]], found: bool):
        self.folder = Path(folder)
        self.entries = entries
        self.found = found
        self._changes: dict[str, dict[str, str] | None] = {}

    @classmethod
    def load(cls, folder: Path) -> OwnedFiles:
        files = read_record(Path(folder) / RECORD)
        if files is None:
            return cls(Path(folder), {}, found=False)
        entries = {name: value for name, value in files.items()
                   if isinstance(value, dict) and isinstance(value.get("key"), str)
                   and isinstance(value.get("by"), str)}
        return cls(Path(folder), entries, found=True)

    def owner(self, name: str) -> str | None:
        """The command that wrote `name`, if the file there is still exactly what it wrote."""
        entry = self.entries.get(name)
        stat = _lstat(self.folder / name)
        if entry is None or stat is None:
            return None
        return entry["by"] if entry["key"] == key_of(stat) else None

    def owns(self, name: str, by: str | Iterable[str]) -> bool:
        """Whether `name` was written by `by` (a command's name, or one of several)."""
        allowed = {by} if isinstance(by, str) else set(by)
        return self.owner(name) in allowed

    def foreign(self, names: Iterable[str], by: str | Iterable[str]) -> list[str]:
        """Those of `names` that exist in the folder but were not written by `by`."""
        return [name for name in names
                if _lstat(self.folder / name) is not None and not self.owns(name, by)]

    def claim(self, name: str, by: str) -> None:
        """Record `name` (just written by `by`) as `by`'s; call `save` to keep it."""
        stat = _lstat(self.folder / name)
        if stat is not None:
            self.entries[name] = self._changes[name] = {"by": by, "key": key_of(stat)}

    def forget(self, name: str) -> None:
        if self.entries.pop(name, None) is not None or name in self._changes:
            self._changes[name] = None

    def save(self) -> None:
        """Write the record with this object's changes laid over what is on disk now."""
        if not self._changes:
            return
        on_disk = read_record(self.folder / RECORD) or {}
        for name, entry in self._changes.items():
            if entry is None:
                on_disk.pop(name, None)
            else:
                on_disk[name] = entry
        on_disk = {n: e for n, e in on_disk.items() if _lstat(self.folder / n) is not None}
        write_record(self.folder / RECORD,
                     "Written by the commands of the CycleGAN chapter's repository: the files they "
                     "wrote in this folder (which command, size:mtime_ns:inode). A command replaces "
                     "only its own files; keep this file.", on_disk)
        self.entries = {n: e for n, e in on_disk.items() if isinstance(e, dict)}
        self._changes.clear()
        self.found = True


def refuse_foreign(folder: Path, names: Iterable[str], by: str | Iterable[str], *, fix: str,
                   record: OwnedFiles | None = None) -> OwnedFiles:
    """Raise `NotOursError` when any of `names` in `folder` exists and `by` did not write it.

    `fix` is what the reader can do (it ends the message). Returns the folder's record.
    """
    record = record if record is not None else OwnedFiles.load(folder)
    taken = record.foreign(names, by)
    if taken:
        listed = ", ".join(taken[:5]) + (" ..." if len(taken) > 5 else "")
        raise NotOursError(f"{folder} already holds {listed}, which this command did not write, and "
                           f"it replaces only files it wrote: nothing was written. {fix}")
    return record


def _file_in_the_way(path: Path) -> Path | None:
    """The first existing part of `path` (itself or a parent) that is not a folder, if any."""
    for part in (path, *path.parents):
        try:
            if part.exists():
                return None if part.is_dir() else part
        except OSError:  # a symbolic link loop, a name too long: the mkdir below says so
            return None
    return None


def output_folder(path: str | os.PathLike, flag: str = "--out", *, create: bool = True) -> Path:
    """`path` as a folder to write into (created with its parents when `create`), or one line
    saying why it cannot be: it, or a folder above it, is a file."""
    path = Path(path).expanduser()
    blocker = _file_in_the_way(path)
    if blocker is not None:
        where = "is a file" if blocker == path else f"cannot be made: {blocker} is a file"
        raise OutputPathError(f"{flag} {path} {where}, not a folder. Give a folder (it is created if "
                              "missing), or move that file.")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """`path` as a file to write (its folder created), or one line saying why it cannot be:
    it is a folder, or a folder above it is a file."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputPathError(f"{flag} {path} is a folder: give the name of a file to write "
                              f"(e.g. {path / 'result.json'}).")
    blocker = _file_in_the_way(path.parent)
    if blocker is not None:
        raise OutputPathError(f"{flag} {path} cannot be written: {blocker} is a file, not a folder. "
                              "Give another path, or move that file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_owned(path: str | os.PathLike, by: str, write: Callable[[Path], Any], *, fix: str,
                force: bool = False, flag: str = "--out") -> Path:
    """Write one file with `write(path)` unless a file of that name is there that `by` did not
    write (refused with `fix`, unless `force`); then record it as `by`'s."""
    path = output_file(path, flag)
    record = OwnedFiles.load(path.parent)
    if not force:
        refuse_foreign(path.parent, [path.name], by, fix=fix, record=record)
    write(path)
    record.claim(path.name, by)
    record.save()
    return path
