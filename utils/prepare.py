"""Get the data and split it into the two domain folders: listing 6.1, done safely and fast.

Listing 6.1 *moves* each CelebA image into `files/black/` or `files/blond/` in a per-row
`df.iloc` loop that swallows every error: it destroys the download, cannot be re-run, and
walks 202,599 rows one at a time. Here the selection is a pair of boolean masks over two
columns, and each selected image is hard-linked (copied where links are impossible) into
its folder, so the download stays intact, a second run is a cheap no-op, and missing
files are counted and named instead of hidden. A re-run removes or replaces only files it
placed itself (each folder keeps a hidden record of them, `utils.split_record`): a reader's
own files there are reported and left alone. Empty and non-image files in the download are
named and left out, so training never meets them.

Exit status of the command line: 0 done (warnings about the data are printed, not fatal);
2 a mistake to fix, in one `error:` line (`utils.cli`), with the manual download steps above
it where they help; 130 interrupted.

Command line (run from the repository root)::

    python -m utils.prepare download celeba|glasses [--root files]
    python -m utils.prepare unpack archive.zip [--root files]
    python -m utils.prepare split celeba [--root files] [--test-count N] [--move]
    python -m utils.prepare split glasses [--root files] [--corrections FILE] [--test-count N]

The download (`utils.kaggle`) and the unpacking of a zip fetched by hand (`utils.archive`)
have modules of their own; this one only runs them from the command line. Where each data
set's files belong is in `utils.datasets`.

Notebooks call `ensure_data()`, which uses the real download when it is there and the
built-in synthetic faces (`utils.synthetic`) otherwise, and says which.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat as stat_module
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from utils.archive import unpack
from utils.cli import SettingError, UserError, command, python_command
from utils.datasets import (
    CELEBA,
    DATASETS,
    GLASSES,
    TMP_SUFFIX,
    DataLayoutError,
    DatasetSpec,
    PathLike,
    dataset_spec,
    inspect_source,
    layout_problems,
    link_or_copy,
    manual_steps,
)
from utils.kaggle import download
from utils.locks import DATA_LOCK, carry, hold, lock_path
from utils.ownership import output_folder
from utils.paths import files_dir
from utils.split_record import SplitRecord, same_content_source

SYNTHETIC_MARKER = ".complete.json"  # written last: a generation without it is redone
MISSING_EXAMPLES = 5


class CSVFormatError(UserError, ValueError):
    """A label CSV (or a corrections file) cannot be used: unreadable, empty, wrong columns or values."""


# --------------------------------------------------------------------------- messages
def _missing_data_error(spec: DatasetSpec, root: Path, problems: list[str]) -> DataLayoutError:
    return DataLayoutError(
        f"No {spec.title} download in {root}: {'; '.join(problems)}. Fix: "
        f"{python_command('utils.prepare', 'download', spec.kind, '--root', root)}, "
        f"or get it by hand from {spec.url} (steps above).",
        manual_steps(spec.kind, root),
    )


# --------------------------------------------------------------------------- CSVs
def _read_label_csv(spec: DatasetSpec, root: Path, allowed: set[int]) -> pd.DataFrame:
    """The id column and the label columns of `spec`'s CSV, validated; nothing else is read."""
    path = root / spec.csv
    if not path.is_file():
        raise _missing_data_error(spec, root, layout_problems(spec.kind, root) or [f"{path} is missing"])
    columns = [spec.id_column, *spec.label_columns]
    try:
        header = pd.read_csv(path, nrows=0).columns
        missing = [c for c in columns if c not in header]
        if missing:
            found = ", ".join(map(str, header[:6])) + (" ..." if len(header) > 6 else "")
            raise CSVFormatError(f"{path} lacks the column(s) {missing} needed for the {spec.kind} split "
                                 f"(its columns: {found}). Is it the {spec.title} file {spec.csv} "
                                 f"from {spec.url}?")
        frame = pd.read_csv(path, usecols=columns, dtype={spec.id_column: str})
    except pd.errors.EmptyDataError:
        raise CSVFormatError(f"{path} is empty; expected the {spec.title} CSV with columns "
                             f"{columns}. Download it again ({spec.url}).") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as err:
        raise CSVFormatError(f"{path} is not a readable CSV file ({type(err).__name__}); expected the "
                             f"{spec.title} CSV with columns {columns}. Download it again "
                             f"({spec.url}).") from None
    if frame.empty:
        raise CSVFormatError(f"{path} has a header but no rows. Download it again ({spec.url}).")
    ids = frame[spec.id_column]
    bad_ids = ids.isna() | ids.str.contains(r"[/\\]|^\.\.?$", regex=True, na=True)
    if bad_ids.any():
        raise CSVFormatError(f"{path}: {int(bad_ids.sum())} row(s) have an empty or path-like "
                             f"{spec.id_column} (e.g. {ids[bad_ids].head(3).tolist()}).")
    _check_ids(spec, path, ids)
    for column in spec.label_columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = ~values.isin(sorted(allowed))
        if bad.any():
            examples = frame[column][bad].head(3).tolist()
            raise CSVFormatError(f"{path}: column {column} must hold only {sorted(allowed)}; "
                                 f"{int(bad.sum())} row(s) do not (e.g. {examples}).")
        frame[column] = values.astype(np.int8)
    return frame


def _check_ids(spec: DatasetSpec, path: Path, ids: pd.Series) -> None:
    """Refuse an id listed twice (its face could land in both folders, and a test face in
    training) and CelebA ids that are not file names (a spreadsheet's re-save dropped `.jpg`:
    not one face would be found), naming the lines."""
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        lines = [int(i) + 2 for i in ids.index[ids == first]]  # +2: the header, and lines count from 1
        others = repeated.nunique() - 1
        raise CSVFormatError(
            f"{path}: {spec.id_column} {first!r} is listed {len(lines)} times (lines "
            f"{', '.join(map(str, lines))}){f', and {others:,} more id(s) too' if others else ''}: each "
            "face must be listed once (else it could land in both folders). Remove the extra lines, or "
            f"download the file again ({spec.url}).")
    if spec is CELEBA:
        bare = ~ids.str.lower().str.endswith(".jpg")
        if bare.any():
            example = ids[bare].iloc[0]
            raise CSVFormatError(
                f"{path}: {int(bare.sum()):,} {spec.id_column} value(s) are not file names (e.g. "
                f"{example!r} on line {int(ids.index[bare][0]) + 2}; CelebA's list names the images, "
                f"e.g. '000001.jpg'), so no face would be found. Was it re-saved by a spreadsheet? "
                f"Download list_attr_celeba.csv again ({spec.url}).")


def read_celeba_attributes(root: PathLike) -> pd.DataFrame:
    """`image_id`, `Black_Hair`, `Blond_Hair` of `root/list_attr_celeba.csv` (values 1/-1)."""
    return _read_label_csv(CELEBA, Path(root), {1, -1})


def read_glasses_labels(root: PathLike) -> pd.DataFrame:
    """`id` (int) and `glasses` (0/1) of `root/train.csv`; unlabelled ids simply have no row."""
    frame = _read_label_csv(GLASSES, Path(root), {0, 1})
    ids = pd.to_numeric(frame["id"], errors="coerce")
    bad = ids.isna() | (ids != ids.round())
    if bad.any():
        raise CSVFormatError(f"{Path(root) / GLASSES.csv}: column id must hold whole numbers "
                             f"(e.g. {frame['id'][bad].head(3).tolist()}).")
    frame["id"] = ids.astype(np.int64)
    return frame


def select_celeba(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Listing 6.1's rule, vectorised: Black_Hair == 1 -> black; else Blond_Hair == 1 -> blond.

    Black wins when both are set, as in the chapter's if/elif. Ids come back sorted so the
    held-out faces (the last ones) are the same on every run.
    """
    black = frame["Black_Hair"].to_numpy() == 1
    blond = (frame["Blond_Hair"].to_numpy() == 1) & ~black
    ids = frame["image_id"].to_numpy(dtype=object)
    return {"black": np.sort(ids[black]).tolist(), "blond": np.sort(ids[blond]).tolist()}


def read_corrections(path: PathLike) -> set[int]:
    """Ids whose glasses label is wrong, from a small text or CSV file.

    Format: one id per line, written `17`, `face-17` or `face-17.png`; in a CSV only the
    first field counts and a header line `id` is allowed; blank lines and `#` comments are
    ignored; an id listed twice counts once (the label is flipped once, never back).
    """
    path = Path(path)
    if path.is_dir():
        raise CSVFormatError(f"--corrections {path} is a folder: give the file that lists the face ids "
                             "whose label is wrong (one per line).")
    if not path.is_file():
        raise FileNotFoundError(f"Corrections file {path} does not exist: check the path given to "
                                "--corrections (corrections= in Python).")
    ids: set[int] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        token = line.split("#", 1)[0].split(",", 1)[0].strip().strip('"')
        if not token or (number == 1 and token.lower() == "id") or token.lower() == "id":
            continue
        stem = token.removesuffix(".png").removeprefix("face-")
        if not stem.isdigit():
            raise CSVFormatError(f"{path}, line {number}: {token!r} is not a face id "
                                 "(write 17, face-17 or face-17.png, one per line).")
        ids.add(int(stem))
    return ids


def select_glasses(frame: pd.DataFrame, flip: Iterable[int] = ()) -> dict[str, list[str]]:
    """glasses == 1 -> G, 0 -> NoG, with the labels of the ids in `flip` inverted."""
    label = frame["glasses"].to_numpy() == 1
    label ^= frame["id"].isin(list(flip)).to_numpy()
    ids = frame["id"].to_numpy()
    return {domain: [f"face-{i}.png" for i in np.sort(ids[mask])]
            for domain, mask in (("G", label), ("NoG", ~label))}


# --------------------------------------------------------------------------- placing files
@dataclass
class SplitReport:
    """What a split did: the faces the rule selects, the files actually placed, and what was left alone."""

    kind: str
    root: Path
    counts: dict[str, int]  # faces the rule selects per domain (training + held out)
    test_counts: dict[str, int]  # of those, held out per domain
    folders: dict[str, Path]  # domain -> training folder
    test_folders: dict[str, Path] = field(default_factory=dict)  # empty when nothing is held out
    linked: int = 0
    copied: int = 0
    moved: int = 0
    skipped: int = 0  # already in place from an earlier run
    missing: int = 0  # listed in the CSV, absent from the image folder
    missing_examples: list[str] = field(default_factory=list)
    removed: int = 0  # our links/copies taken out of a folder they no longer belong in
    restored: int = 0  # files an earlier --move took out, put back into the download
    flipped: int = 0  # glasses labels inverted by the corrections file
    placed: dict[Path, int] = field(default_factory=dict)  # folder -> faces of the split in it now
    unreadable: int = 0  # empty or non-image files in the download: left out of the split
    unreadable_examples: list[str] = field(default_factory=list)  # "name (why)"
    foreign: dict[Path, list[str]] = field(default_factory=dict)  # files the split did not place
    blocked: dict[Path, list[str]] = field(default_factory=dict)  # faces not placed: a foreign file's name

    @property
    def train_counts(self) -> dict[str, int]:
        """Faces the rule puts in each training folder (what `in_place` should reach)."""
        return {d: n - self.test_counts.get(d, 0) for d, n in self.counts.items()}

    @property
    def in_place(self) -> dict[str, int]:
        """Faces of the split actually in each training folder after this run."""
        return {d: self.placed.get(folder, 0) for d, folder in self.folders.items()}

    def _folder(self, folder: Path, planned: int) -> str:
        placed = self.placed.get(folder, 0)
        return f"{folder} ({placed:,})" if placed == planned else f"{folder} ({placed:,} of {planned:,})"

    def summary(self) -> str:
        counts = ", ".join(f"{n:,} {d}" for d, n in self.counts.items())
        lines = [f"{self.kind} split in {self.root}: the rule selects {counts}"
                 + (f" ({self.flipped:,} labels flipped by the corrections)" if self.flipped else "")]
        lines.append("  training: " + ", ".join(self._folder(self.folders[d], n)
                                               for d, n in self.train_counts.items()))
        if self.test_folders:
            lines.append("  held out: " + ", ".join(self._folder(self.test_folders[d], n)
                                                   for d, n in self.test_counts.items()))
        actions = (f"  files: {self.linked:,} linked, {self.copied:,} copied, {self.moved:,} moved, "
                   f"{self.skipped:,} already there")
        if self.removed or self.restored:
            actions += f", {self.removed:,} removed from a folder they no longer belong in"
            actions += f", {self.restored:,} put back into the download" if self.restored else ""
        lines.append(actions)
        if self.missing:
            lines.append(f"  WARNING: {self.missing:,} image(s) listed in the CSV are not in the image "
                         f"folder (e.g. {', '.join(self.missing_examples)}); the download may be incomplete.")
        if self.unreadable:
            lines.append(f"  WARNING: {self.unreadable:,} file(s) in the image folder are empty or not "
                         f"images and were left out of the split: {'; '.join(self.unreadable_examples)}"
                         f"{' ...' if self.unreadable > len(self.unreadable_examples) else ''}. "
                         "The download is damaged there: download it again (or delete those files).")
        for folder, names in self.foreign.items():
            if not names:
                continue
            blocked = self.blocked.get(folder, [])
            examples = ", ".join(names[:MISSING_EXAMPLES]) + (" ..." if len(names) > MISSING_EXAMPLES else "")
            line = (f"  WARNING: {folder} holds {len(names):,} file(s) this split did not place "
                    f"({examples}): left untouched, and training will use every image among them.")
            if blocked:
                line += (f" {len(blocked):,} of them have the name of a face the rule puts there, which "
                         "was therefore not placed.")
            line += " If they are yours, move them to a folder of your own and run the split again."
            lines.append(line)
        return "\n".join(lines)


def _listdir(folder: Path) -> set[str]:
    return set(os.listdir(folder)) if folder.is_dir() else set()


def _scan(folder: Path) -> dict[str, os.stat_result]:
    """`lstat` of every entry of `folder` but sub-folders and hidden files (.DS_Store and the like).

    One `stat` per file, relative to the open folder where the system allows it: on 78,396
    files the per-entry overhead of `os.scandir` and path joins costs as much as the calls.
    """
    try:
        names = [n for n in os.listdir(folder) if not n.startswith(".")]
    except FileNotFoundError:
        return {}
    if os.stat in os.supports_dir_fd:
        fd = os.open(folder, os.O_RDONLY)
        try:
            stats = {n: os.stat(n, dir_fd=fd, follow_symlinks=False) for n in names}
        finally:
            os.close(fd)
    else:
        base = os.fspath(folder)
        stats = {n: os.lstat(os.path.join(base, n)) for n in names}
    return {n: st for n, st in stats.items() if not stat_module.S_ISDIR(st.st_mode)}


def _placed_by_an_older_split(image_dir: Path, name: str, stat: os.stat_result, wanted: set[str],
                              available: set[str]) -> bool:
    """For a folder without a record: is this file the download's own (a link or a `copy2` of it)?

    A wanted name the download no longer has is what an older `--move` left; it stays where it
    is (nothing is removed on that evidence alone).
    """
    if name in available:
        return same_content_source(stat, os.stat(image_dir / name))
    return name in wanted


def _place(report: SplitReport, plan: dict[Path, list[str]], image_dir: Path, known: set[str],
           move: bool) -> None:
    """Make each folder of `plan` hold its planned faces, touching only files the split placed.

    A file the split placed earlier (its folder's `SplitRecord` vouches for it) that the plan
    no longer wants there (another test_count, a corrected label) is removed: the download
    still has the face; if an earlier `--move` took it out of the download, it goes back there
    instead. Every other file is the reader's: left untouched and reported, and a planned face
    whose name it holds is not placed. Empty and non-image files in the download are left out.
    """
    available = _listdir(image_dir)
    records: dict[Path, SplitRecord] = {}
    present: dict[Path, set[str]] = {}
    for folder, wanted_list in plan.items():
        record = records[folder] = SplitRecord.load(folder)
        wanted = set(wanted_list)
        files = _scan(folder)
        for name in [n for n in files if n.endswith(TMP_SUFFIX) and n[:-len(TMP_SUFFIX)] in known]:
            (folder / name).unlink()  # our copy cut short (`link_or_copy` writes under this name)
            del files[name]
        ours = {name for name, stat in files.items() if record.owns(name, stat)}
        if not record.found:
            ours |= {name for name, stat in files.items() if name in known and
                     _placed_by_an_older_split(image_dir, name, stat, wanted, available)}
        for name in set(record.entries) - ours:
            record.forget(name)  # gone, or replaced by a file of the reader's
        for name in ours - set(record.entries):
            record.add(name, files[name])
        stale = ours - wanted
        for name in sorted(stale):
            if name in available:
                (folder / name).unlink()
                report.removed += 1
            else:
                os.replace(folder / name, image_dir / name)
                available.add(name)
                report.restored += 1
            record.forget(name)
        present[folder] = ours - stale
        report.foreign[folder] = sorted(set(files) - ours)
    missing: list[str] = []
    bad: list[str] = []
    try:
        for folder, wanted_list in plan.items():
            record, foreign = records[folder], set(report.foreign[folder])
            todo = [n for n in wanted_list if n not in present[folder]]
            report.skipped += len(wanted_list) - len(todo)
            report.placed[folder] = len(wanted_list) - len(todo)
            report.blocked[folder] = [n for n in todo if n in foreign]
            ready: list[tuple[str, os.stat_result]] = []
            source_dir, target_dir = os.fspath(image_dir), os.fspath(folder)  # strings: no pathlib per file
            for name in todo:
                if name in foreign:
                    continue
                if name not in available:
                    missing.append(name)
                    continue
                stat, problem = inspect_source(os.path.join(source_dir, name))
                if problem:
                    bad.append(f"{name} ({problem})")
                    continue
                ready.append((name, stat))
            if not ready:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            for name, stat in ready:  # recorded first: a split cut short still knows its files
                record.add(name, stat)
            record.save()
            for name, _ in ready:
                src, dst = os.path.join(source_dir, name), os.path.join(target_dir, name)
                if move:
                    shutil.move(src, dst)
                    available.discard(name)
                    action = "moved"
                else:
                    try:
                        action = link_or_copy(src, dst)
                    except FileExistsError:  # appeared since the scan: someone else's
                        record.forget(name)
                        report.foreign[folder].append(name)
                        continue
                if action != "linked":  # a copy (or a move across drives) has an inode of its own
                    record.add(name, os.lstat(dst))
                setattr(report, action, getattr(report, action) + 1)
                report.placed[folder] += 1
    finally:
        for record in records.values():
            record.save()
    report.missing = len(missing)
    report.missing_examples = sorted(missing)[:MISSING_EXAMPLES]
    report.unreadable = len(bad)
    report.unreadable_examples = sorted(bad)[:MISSING_EXAMPLES]


def _split(spec: DatasetSpec, root: Path, selection: dict[str, list[str]], known: set[str],
           out_dir: Path, test_dir: Path, test_count: int, move: bool, flipped: int = 0) -> SplitReport:
    if test_count < 0:
        raise SettingError(f"--test-count (test_count) must be 0 or more, got {test_count}: it is the "
                           "number of faces per domain held out of training.")
    fewest = min(selection, key=lambda d: len(selection[d]))
    if test_count and len(selection[fewest]) <= test_count:
        raise SettingError(f"test_count={test_count} would hold out every {fewest!r} face (the rule "
                           f"selects only {len(selection[fewest])}); choose a smaller test_count "
                           f"(at most {max(0, len(selection[fewest]) - 1)}).")
    image_dir = root / spec.image_dir
    if not image_dir.is_dir():
        raise _missing_data_error(spec, root, layout_problems(spec.kind, root))
    with hold(out_dir, DATA_LOCK, advice="run this split again once it is done"):
        return _split_locked(spec, root, selection, known, out_dir, test_dir, test_count, move, flipped)


def _split_locked(spec: DatasetSpec, root: Path, selection: dict[str, list[str]], known: set[str],
                  out_dir: Path, test_dir: Path, test_count: int, move: bool, flipped: int) -> SplitReport:
    """`_split` while this process holds the split's lock: one split per folder at a time."""
    image_dir = root / spec.image_dir
    folders = {d: out_dir / d for d in selection}
    test_folders = {d: test_dir / d for d in selection}
    for folder in (*folders.values(), *test_folders.values()):
        if folder.exists() and not folder.is_dir():
            raise DataLayoutError(f"{folder} is a file, but the split puts faces in a folder of that "
                                  "name. Nothing was changed: rename or move that file, then run again.")
    plan: dict[Path, list[str]] = {}
    for domain, names in selection.items():
        cut = len(names) - test_count
        plan[folders[domain]] = names[:cut]
        plan[test_folders[domain]] = names[cut:]
    report = SplitReport(
        kind=spec.kind, root=root, counts={d: len(n) for d, n in selection.items()},
        test_counts={d: min(test_count, len(n)) for d, n in selection.items()},
        folders=folders, test_folders=test_folders if test_count else {}, flipped=flipped,
    )
    _place(report, plan, image_dir, known, move)
    print(report.summary())
    return report


def split_celeba(root: PathLike, *, test_count: int = 0, move: bool = False) -> SplitReport:
    """Listing 6.1: faces with black hair -> `root/black/`, blond -> `root/blond/`.

    The download in `root/img_align_celeba/img_align_celeba/` is left intact (hard links,
    or copies where links fail) unless `move=True`. The last `test_count` faces of each
    domain by id go to `root/test/black/` and `root/test/blond/` instead, never into
    training. Re-running skips what is already in place and repairs what a different
    `test_count` left in the wrong folder.
    """
    root = Path(root)
    frame = read_celeba_attributes(root)
    selection = select_celeba(frame)
    known = set(frame["image_id"].tolist())
    return _split(CELEBA, root, selection, known, root, root / "test", test_count, move)


def split_glasses(root: PathLike, *, corrections: PathLike | None = None, test_count: int = 0,
                  move: bool = False) -> SplitReport:
    """Exercise 6.2's split: glasses == 1 -> `root/glasses/G/`, 0 -> `root/glasses/NoG/`.

    Only ids with a row in `train.csv` are split (the unlabelled ones have none). About 10%
    of the labels are wrong: list the ids to flip in a `corrections` file (see
    `read_corrections` for its format). Held-out faces go to `root/glasses/test/G|NoG/`.
    """
    root = Path(root)
    frame = read_glasses_labels(root)
    flip = read_corrections(corrections) if corrections is not None else set()
    unknown = sorted(flip - set(frame["id"].tolist()))
    if unknown:
        raise CSVFormatError(f"Corrections file {corrections} lists id(s) with no label in "
                             f"{root / GLASSES.csv}: {unknown[:10]}. Only labelled faces can be flipped: "
                             "remove those lines.")
    selection = select_glasses(frame, flip)
    known = {f"face-{i}.png" for i in frame["id"].tolist()}
    out = root / "glasses"
    return _split(GLASSES, root, selection, known, out, out / "test", test_count, move, len(flip))


# --------------------------------------------------------------------------- notebooks
@dataclass(frozen=True)
class DataChoice:
    """Which faces the notebooks train on, and where the two domains and held-out faces are."""

    real: bool
    root: Path
    domain_A: Path
    domain_B: Path
    test_A: Path | None
    test_B: Path | None
    truth: Path | None  # ground_truth/<kind> of the synthetic faces; None for real data


def _readers_files(folder: Path, kind: str) -> list[Path]:
    """Files under a synthetic-faces folder that neither the generator nor the split wrote.

    The generator owns the CSVs, the image folder, `ground_truth/` and the marker; the split
    owns what its records vouch for. Anything else (a photo added to `black/`, notes) is the
    reader's. Hidden files (`.DS_Store`, the records) are nobody's work.
    """
    spec = dataset_spec(kind)
    generated = {spec.csv, PurePosixPath(spec.image_dir).parts[0], "ground_truth"}
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        if here == folder:
            dirnames[:] = [d for d in dirnames if d not in generated]
        record = SplitRecord.load(here)
        for name in filenames:
            if name.startswith(".") or (here == folder and (name in generated or name.endswith(".csv"))):
                continue
            stat = os.lstat(here / name)
            if record.owns(name, stat):
                continue
            source = folder / spec.image_dir / name  # split by an older version, without a record
            if not record.found and source.is_file() and same_content_source(stat, source.stat()):
                continue
            found.append(here / name)
    return sorted(found)


def _refuse_if_readers_files(folder: Path, kind: str, wanted: dict) -> None:
    found = _readers_files(folder, kind)
    if found:
        examples = ", ".join(str(p.relative_to(folder)) for p in found[:MISSING_EXAMPLES])
        raise UserError(
            f"{folder} must be generated again ({wanted['count']:,} faces, seed {wanted['seed']}), but it "
            f"holds {len(found):,} file(s) that neither the generator nor the split wrote ({examples}"
            f"{' ...' if len(found) > MISSING_EXAMPLES else ''}). Nothing was changed: move your own files "
            "to a folder of your own, then run again.")


def is_builtin_faces(folder: PathLike) -> bool:
    """Whether a domain folder (training or held out) holds the built-in synthetic faces: it lies in
    a folder the face generator made and marked. False for a folder that is gone."""
    folder = Path(folder)
    return any((parent / SYNTHETIC_MARKER).is_file() for parent in (folder, *list(folder.parents)[:2]))


def _ensure_synthetic(kind: str, folder: Path, count: int, seed: int) -> None:
    """Generate the synthetic faces into `folder` unless a complete generation is there.

    Called with the folder's split lock held (`ensure_data`): the lock file travels into the
    new generation before it replaces the old one, so the folder is never unlocked meanwhile."""
    marker = folder / SYNTHETIC_MARKER
    wanted = {"kind": kind, "count": count, "seed": seed}
    try:
        if json.loads(marker.read_text(encoding="utf-8")) == wanted:
            return
    except (OSError, ValueError):
        pass  # no marker or a damaged one: the folder is not trusted
    if folder.exists():  # checked before any work: the reader's files are never replaced
        _refuse_if_readers_files(folder, kind, wanted)
    from utils import synthetic

    make = synthetic.make_celeba if kind == "celeba" else synthetic.make_glasses
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        print(f"Generating {count:,} synthetic {kind} faces in {folder} ...")
        make(staging, count, seed=seed)
        (staging / SYNTHETIC_MARKER).write_text(json.dumps(wanted), encoding="utf-8")
        lock = lock_path(folder, DATA_LOCK)
        if lock.exists():
            carry(lock, staging)
        if folder.exists():  # an interrupted or different generation: ours to replace
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}-old-", dir=folder.parent))
            os.replace(folder, old / folder.name)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_data(kind: str = "celeba", root: PathLike | None = None, *, synthetic_count: int | None = None,
                test_count: int = 10, seed: int = 0) -> DataChoice:
    """The two domain folders a notebook trains on: the real download if present, else synthetic.

    Real data: `root` (default `files/`) holds the Kaggle layout; it is split (a cheap
    no-op when already split). Otherwise the built-in synthetic faces are generated once
    under `root/synthetic/` (glasses: `root/synthetic_glasses/`), `synthetic_count` of
    them (default 1000, 200 with CH06_FAST=1), and split the same way. Prints which.
    """
    spec = dataset_spec(kind)
    root = Path(root) if root is not None else files_dir()
    problems = layout_problems(kind, root)
    # an image folder emptied by an earlier `split --move` still counts: its faces are split
    real = (root / spec.csv).is_file() and (root / spec.image_dir).is_dir()
    split = split_celeba if kind == "celeba" else split_glasses
    data_root = root if real else root / spec.synthetic_dir
    # one lock over generating and splitting: two notebooks (or one and `make demo`) take turns
    with hold(data_root, DATA_LOCK, advice="run this again once it is done"):
        if real:
            print(f"Using the real {spec.title} download in {root}.")
            truth = None
        else:
            if synthetic_count is None:
                from utils.runtime import fast_mode  # here: the split alone never imports torch

                synthetic_count = 200 if fast_mode() else 1000
            _ensure_synthetic(kind, data_root, synthetic_count, seed)
            truth = data_root / "ground_truth" / kind
            print(f"Using the built-in synthetic faces in {data_root}: no {spec.title} download found in "
                  f"{root} ({'; '.join(problems)}). To use the real data: "
                  f"`{python_command('utils.prepare', 'download', kind, '--root', root)}` "
                  "(README, \"The data\").")
        report = split(data_root, test_count=test_count)
    domain_A, domain_B = report.folders.values()
    test_A, test_B = report.test_folders.values() if report.test_folders else (None, None)
    return DataChoice(real=real, root=data_root, domain_A=domain_A, domain_B=domain_B,
                      test_A=test_A, test_B=test_B, truth=truth)


# --------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m utils.prepare", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    root_help = "the data folder (default: files/, or $CH06_FILES)"
    p = sub.add_parser("download", help="fetch a Kaggle data set with kagglehub (needs credentials)")
    p.add_argument("kind", choices=sorted(DATASETS))
    p.add_argument("--root", type=Path, default=None, help=root_help)
    p = sub.add_parser("unpack", help="unpack a Kaggle zip downloaded by hand, safely")
    p.add_argument("zip", type=Path)
    p.add_argument("--root", type=Path, default=None, help=root_help)
    p.add_argument("--kind", choices=sorted(DATASETS), default=None, help="default: guessed from the zip")
    p = sub.add_parser("split", help="link the faces into the two domain folders")
    p.add_argument("kind", choices=sorted(DATASETS))
    p.add_argument("--root", type=Path, default=None, help=root_help)
    p.add_argument("--test-count", type=int, default=0, help="faces per domain held out (the last by id)")
    p.add_argument("--move", action="store_true",
                   help="move instead of link/copy (the chapter's way: saves disk, empties the download)")
    p.add_argument("--corrections", type=Path, default=None,
                   help="glasses only: a file of face ids whose label is wrong (one per line)")
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (see the module docstring: 0, 2 or 130)."""
    args = _parser().parse_args(argv)
    root = output_folder(args.root, "--root", create=False) if args.root is not None else files_dir()
    if args.command == "download":
        download(args.kind, root)
    elif args.command == "unpack":
        unpack(args.zip, root, kind=args.kind)
    elif args.kind == "celeba":
        if args.corrections is not None:
            raise UserError("--corrections applies to the glasses split only: leave it out for celeba.")
        split_celeba(root, test_count=args.test_count, move=args.move)
    else:
        split_glasses(root, corrections=args.corrections, test_count=args.test_count, move=args.move)
    return 0


if __name__ == "__main__":
    sys.exit(main())
