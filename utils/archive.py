"""Unpack a Kaggle zip into the chapter's layout: no member outside the target, all or nothing.

A zip downloaded by hand is untrusted input, and a crash or a wrong archive half way
through must not leave a layout that looks complete. Every member is checked before
anything is written (absolute paths, `..` and symbolic links are refused, not silently
renamed), the archive goes into a staging folder inside the data folder, and only a
complete CSV and image folder are renamed into place; a partial layout already there is
never overwritten. `utils.kaggle` installs what kagglehub fetches through the same steps.

Command line: `python -m utils.prepare unpack archive.zip [--root files]`.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PureWindowsPath

from utils.cli import UserError, python_command
from utils.datasets import (
    DATASETS,
    DataLayoutError,
    DatasetSpec,
    PathLike,
    dataset_spec,
    layout_problems,
    link_or_copy,
)
from utils.locks import DATA_LOCK, hold
from utils.paths import files_dir


class UnsafeArchiveError(UserError, ValueError):
    """A zip member would land outside the target folder (absolute path, `..`, symlink)."""


def member_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The path parts of a zip member, or UnsafeArchiveError if it could escape the target."""
    name = info.filename
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"refusing the symbolic link {name!r}")
    windows = PureWindowsPath(name)
    if name.startswith(("/", "\\")) or windows.drive or windows.is_absolute():
        raise UnsafeArchiveError(f"refusing the absolute path {name!r}")
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"refusing {name!r}: it climbs out of the target folder with '..'")
    return parts


def safe_extract(zip_path: PathLike, target: PathLike) -> list[Path]:
    """Extract a zip so that no member lands outside `target`; check every member first.

    Absolute paths, `..` components and symbolic links are refused before anything is
    written, so a bad archive leaves nothing behind.
    """
    zip_path, target = Path(zip_path), Path(target)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise UnsafeArchiveError(f"{zip_path} is not a readable zip file ({err}): an interrupted "
                                 "download? Download it again (Kaggle's 'Download' button saves "
                                 "archive.zip).") from None
    base = target.resolve()
    written = []
    with archive:
        members = []
        seen: set[tuple[str, ...]] = set()
        for info in archive.infolist():
            try:
                parts = member_parts(info)
            except UnsafeArchiveError as err:
                raise UnsafeArchiveError(f"{zip_path}: {err}; nothing was extracted.") from None
            if parts and not info.is_dir() and parts in seen:  # the second would overwrite the first
                raise UnsafeArchiveError(f"{zip_path} holds two files named {'/'.join(parts)!r}: which "
                                         "one is meant is unclear, so nothing was extracted. Download "
                                         "the archive again.")
            seen.add(parts)
            if parts:
                dest = target.joinpath(*parts)
                if not dest.resolve().is_relative_to(base):
                    raise UnsafeArchiveError(f"{zip_path}: {info.filename!r} would land outside "
                                             f"{target}; nothing was extracted.")
                members.append((info, dest))
        for info, dest in members:
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            written.append(dest)
    return written


def find_dataset_root(folder: Path, spec: DatasetSpec, depth: int = 3) -> Path | None:
    """The folder under `folder` (itself or up to `depth` levels down) that holds `spec`'s CSV."""
    level = [folder]
    for _ in range(depth + 1):
        for candidate in level:
            if (candidate / spec.csv).is_file():
                return candidate
        # scandir's is_dir() needs no stat per entry: cheap even beside 202,599 images
        level = sorted(Path(e.path) for c in level for e in os.scandir(c) if e.is_dir())
    return None


def _link_tree(src: Path, dst: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(src):
        here = dst / Path(dirpath).relative_to(src)
        here.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            link_or_copy(Path(dirpath) / name, here / name)


def check_targets_free(spec: DatasetSpec, root: Path) -> None:
    """Refuse before any work when `root` holds part of the layout: a reader's files are never replaced."""
    taken = [root / name for name in spec.top_level if (root / name).exists()]
    if taken:
        raise DataLayoutError(
            f"{root} already holds {', '.join(map(str, taken))} but not a complete {spec.title} "
            f"download ({'; '.join(layout_problems(spec.kind, root))}). Nothing was changed: move "
            f"{'it' if len(taken) == 1 else 'them'} elsewhere (or finish the layout by hand) and retry.")


def install(spec: DatasetSpec, source: Path, root: Path, staging: Path, *, link: bool) -> None:
    """Bring the CSV and image folder of a dataset found at `source` into `root`, all or nothing.

    `source` is a kagglehub cache folder (linked/copied into `staging`) or already a folder
    inside `staging` (an unpacked zip). Only when the staged layout is complete are its two
    entries renamed into `root`.
    """
    found = find_dataset_root(source, spec)
    if found is None:
        raise DataLayoutError(f"No {spec.csv} found in {source}: is it the {spec.title} archive "
                              f"({spec.url})?")
    if link:
        for name in spec.top_level:
            if (found / name).is_dir():
                _link_tree(found / name, staging / name)
            elif (found / name).is_file():
                link_or_copy(found / name, staging / name)
        found = staging
    problems = layout_problems(spec.kind, found)
    if problems:
        raise DataLayoutError(f"The {spec.title} data in {source} does not have the expected layout: "
                              f"{'; '.join(problems)} (the expected tree is above). Nothing was changed in "
                              f"{root}.", "Expected:\n" + spec.tree.format(root=root))
    # the image folder first, the CSV last: the layout counts as present only with both
    for name in reversed(spec.top_level):
        os.replace(found / name, root / name)


def unpack(zip_path: PathLike, root: PathLike | None = None, *, kind: str | None = None) -> Path:
    """Unpack a Kaggle zip downloaded by hand into `root`'s layout, safely and all-or-nothing.

    `kind` is guessed from the archive's CSV when not given. Returns `root`.
    """
    zip_path, root = Path(zip_path), Path(root) if root is not None else files_dir()
    if zip_path.is_dir():
        raise DataLayoutError(f"{zip_path} is a folder, not a zip file: give the path of the zip you "
                              "downloaded (Kaggle names it archive.zip).")
    if not zip_path.is_file():
        raise FileNotFoundError(f"{zip_path} does not exist: check the path of the zip you downloaded "
                                "(Kaggle names it archive.zip).")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        extracted = staging / "extracted"
        safe_extract(zip_path, extracted)
        specs = [dataset_spec(kind)] if kind else list(DATASETS.values())
        spec = next((s for s in specs if find_dataset_root(extracted, s)), None)
        if spec is None:
            inner = sorted(str(p.relative_to(extracted)) for p in extracted.rglob("*.zip"))
            if inner:
                raise DataLayoutError(f"{zip_path} holds another zip ({inner[0]}) instead of the data "
                                      "set: it was zipped twice. Unzip it once, then unpack the zip "
                                      "inside: python -m utils.prepare unpack PATH/TO/THAT.zip")
            raise DataLayoutError(f"{zip_path} holds neither {' nor '.join(s.csv for s in specs)}: "
                                  f"is it the right Kaggle archive ({', '.join(s.url for s in specs)})?")
        with hold(root, DATA_LOCK, advice="unpack again once it is done"):  # no split or download meanwhile
            if not layout_problems(spec.kind, root):
                print(f"{spec.title} is already in place in {root}; nothing to do.")
                return root
            check_targets_free(spec, root)
            install(spec, extracted, root, staging, link=False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(in_place_message(spec, root))
    return root


def in_place_message(spec: DatasetSpec, root: Path) -> str:
    count = sum(1 for _ in os.scandir(root / spec.image_dir))
    return (f"{spec.title} is in place: {root / spec.csv}, {root / spec.image_dir} ({count:,} files).\n"
            f"Next: {python_command('utils.prepare', 'split', spec.kind, '--root', root)}")


if __name__ == "__main__":  # no command line of its own: say which one to use rather than do nothing
    import sys

    print("error: this module has no command line of its own — run `python -m utils.prepare "
          "unpack PATH/TO/archive.zip [--root files]`.", file=sys.stderr)
    sys.exit(2)
