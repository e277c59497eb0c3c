"""What the split placed in a folder, so that a re-run touches its own files and nothing else.

(Extra code – not in the book.) Listing 6.1 decides by file name alone; so did our first
split, and a reader's own `files/black/000123.jpg` was deleted (its name belonged to the
other colour) or silently trained on (its name was one the split wanted). Now every folder
the split fills has a hidden record beside it (`files/.black.ch06-split.json` for
`files/black/`; beside, not inside, so that the chapter's `os.listdir` of the folder sees
faces only): for each file the split placed there, its size, modification time (ns) and
inode number. A file counts as the split's own
only when all three still match, so a photo saved over one of them, or a new file that
took one of its names, is the reader's: reported and left alone.

The three numbers cost one `lstat` per file to check (a re-run of the full CelebA split
checks 78,452 files in a fraction of a second); no image is read. A hard link, a rename
(`--move`) and `shutil.copy2` keep the size and modification time of the download's file,
and the first two its inode, so the record is written *before* the files are placed, with
the download's numbers, and corrected afterwards where a copy got a new inode: a split cut
short still knows its files.

The numbers and the JSON file are those of every folder the project writes into
(`utils.ownership`, the one rule: a command replaces only files it wrote).

A folder without a record (split by an older version) is trusted only where the file is
the download's own (a hard link to it, or a copy with its size and modification time).
"""

from __future__ import annotations

import os
from pathlib import Path

from utils.ownership import Key, key_of, read_record, same_content_source, write_record

__all__ = ["RECORD_SUFFIX", "Key", "SplitRecord", "key_of", "record_path", "same_content_source"]

RECORD_SUFFIX = ".ch06-split.json"


def record_path(folder: Path) -> Path:
    """The record of `folder`: a hidden file beside it (files/black -> files/.black.ch06-split.json)."""
    return folder.parent / f".{folder.name}{RECORD_SUFFIX}"


class SplitRecord:
    """The record of one folder: name -> key of each file the split placed there."""

    def __init__(self, folder: Path, entries: dict[str, Key], found: bool):
        self.folder = folder
        self.entries = entries
        self.found = found  # False: no (readable) record; the folder is from an older split or none
        self._saved = dict(entries)

    @classmethod
    def load(cls, folder: Path) -> SplitRecord:
        entries = read_record(record_path(folder))
        if entries is None or not all(isinstance(k, str) for k in entries.values()):
            return cls(folder, {}, found=False)  # a damaged record vouches for nothing
        return cls(folder, entries, found=True)

    def owns(self, name: str, stat: os.stat_result) -> bool:
        """Whether the file `name` with `stat` is exactly the one the split placed."""
        return self.entries.get(name) == key_of(stat)

    def add(self, name: str, stat: os.stat_result) -> None:
        self.entries[name] = key_of(stat)

    def forget(self, name: str) -> None:
        self.entries.pop(name, None)

    def save(self) -> None:
        """Write the record atomically, and only when it changed (a re-run leaves it untouched)."""
        if self.entries == self._saved and self.found:
            return
        if not self.entries and not self.found:
            return
        write_record(record_path(self.folder),
                     f"Written by `python -m utils.prepare split`: the files it placed in "
                     f"{self.folder.name}/ (size:mtime_ns:inode). A re-run removes or replaces only "
                     "these; keep this file.", self.entries, compact=True)
        self._saved = dict(self.entries)
        self.found = True
