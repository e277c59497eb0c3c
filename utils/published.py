"""The chapter's trained generators: fetch `hair.zip`, check both files, place them together.

(Extra code – not in the book.) Without a GPU the chapter offers its author's generators
instead of a day of training: download `hair.zip`, unzip it, put `gen_black.pth` and
`gen_blond.pth` in `files/`. `python -m utils.published fetch` (or `make weights`) does
those steps, treating what comes back as untrusted:

* it downloads into a temporary folder inside the target folder (a progress bar in bytes),
  and refuses an answer far larger than the zip (a generator is about 45.6 MB);
* it reads only the two members named `gen_black.pth` / `gen_blond.pth`, wherever they sit
  in the zip (a top-level folder and macOS `__MACOSX/` entries do not matter); a member whose
  name would land outside the folder (absolute, `..`, a link) makes it refuse the whole zip,
  and a member far larger than a generator is refused before and while it is read;
* each file is loaded with `weights_only=True` (pickled code never runs) and strictly into
  the chapter's `Generator(3, 64, 9)`; only when both pass are both renamed into place;
* a reader's own `gen_black.pth` / `gen_blond.pth` are never replaced unless `force=True`
  (`--force`); any failure leaves the target folder exactly as it was;
* it holds the folder's lock (`utils.locks`) while it works, so it never writes into a folder
  a training run is writing, and marks what it placed as its own (`utils.ownership`); the
  unfinished download folders of a fetch that was killed are removed by the next successful
  one, and only those (each carries the fetch's mark inside).

The address is `PUBLISHED_WEIGHTS_URL` (the chapter's); `$CH06_WEIGHTS_URL` or `--url`
replaces it with another zip URL, a folder URL holding the two files, a `file://` URL or a
plain path to a zip (or folder) downloaded by hand.

Command line: `python -m utils.published fetch [--url URL] [--dest FOLDER] [--force]`.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import torch
from tqdm.auto import tqdm

from utils.archive import (  # member_parts: the same rules as the data sets' unpack
    UnsafeArchiveError,
    member_parts,
)
from utils.ch06util import Generator
from utils.checkpoints import (
    CheckpointError,
    PathLike,
    load_state_dict_checked,
    looks_like_html,
    not_finite,
    unreadable_reason,
)
from utils.cli import SettingError, command, python_command
from utils.locks import OUTPUT_LOCK, hold
from utils.ownership import OwnedFiles, output_folder
from utils.paths import atomic_write_text, files_dir

PUBLISHED_FILES = ("gen_black.pth", "gen_blond.pth")  # the chapter's names, placed in files/
WEIGHTS_URL_ENV = "CH06_WEIGHTS_URL"  # another address: a mirror, or a zip downloaded by hand

# The chapter's address for its trained generators (a zip holding gen_black.pth and gen_blond.pth,
# state_dicts of Generator(3), 64 wide, 9 residual blocks, trained at 256 px).
PUBLISHED_WEIGHTS_URL = "https://gattonweb.uky.edu/faculty/lium/ml/hair.zip"
PUBLISHED_SIZES = {"num_features": 64, "num_residuals": 9}  # Generator(3, 64, 9)
PUBLISHED_IMAGE_SIZE = 256  # what they were trained at: run them at this size

# A generator's state_dict is about 45.6 MB; nothing honest in the zip is much larger.
MAX_MEMBER_BYTES = 200 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 2 * MAX_MEMBER_BYTES + 16 * 1024 * 1024
USER_AGENT = "ch06-cyclegan/1.0 (book companion; fetches the chapter's hair.zip)"
RECORD = "published_generators.json"  # what was placed, so a second run knows it is done
OWNER = "utils.published"  # how the files it places are marked (utils.ownership)
_CHUNK = 1 << 20


class FetchError(CheckpointError):
    """The published generators could not be fetched; nothing in the target folder changed."""


def weights_source(url: str | None = None) -> str:
    """The address to fetch from: `url`, else `$CH06_WEIGHTS_URL`, else the chapter's."""
    return url or os.environ.get(WEIGHTS_URL_ENV) or PUBLISHED_WEIGHTS_URL


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def published_in_place(folder: PathLike | None = None) -> bool:
    """Whether `folder` (default `files/`) holds the pair a fetch placed, unchanged since.

    A training run that later writes its own `gen_*.pth` there makes this False, so callers
    can say which generators they show (published or trained).
    """
    folder = Path(folder) if folder is not None else files_dir()
    try:
        record = json.loads((folder / RECORD).read_text())
        return all(_sha256(folder / name) == record["sha256"][name] for name in PUBLISHED_FILES)
    except (OSError, ValueError, KeyError, TypeError):
        return False


# ------------------------------------------------------------------------------ reading sources
def _classify(source: str) -> tuple[str, str | Path]:
    """("http-zip" | "http-folder", url) or ("local", path) for an address or a path."""
    parts = urllib.parse.urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        kind = "http-zip" if parts.path.lower().endswith(".zip") else "http-folder"
        return kind, source
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise FetchError(f"{source}: a file:// URL must name a file on this machine.")
        return "local", Path(urllib.request.url2pathname(parts.path))
    if scheme and len(scheme) > 1:  # one letter is a Windows drive (C:\...)
        raise FetchError(f"{source}: only http(s):// and file:// addresses or a local path are "
                         "understood.")
    return "local", Path(source).expanduser()


def _copy_capped(src: BinaryIO, out: Path, cap: int, what: str, bar: tqdm | None = None) -> int:
    """Copy `src` into `out` in chunks, refusing more than `cap` bytes (whatever a header said)."""
    count = 0
    with open(out, "wb") as handle:
        while chunk := src.read(_CHUNK):
            count += len(chunk)
            if count > cap:
                raise FetchError(f"{what} is larger than {cap / 1e6:.0f} MB, far larger than a "
                                 "generator (45.6 MB): refused (a wrong file, or a zip bomb).")
            handle.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
    return count


def _download(url: str, out: Path, timeout: float, progress: bool, cap: int) -> str:
    """`url` into `out` with a progress bar; returns the answer's content type."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    host = urllib.parse.urlsplit(url).netloc
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            length = answer.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
            if total is not None and total > cap:
                raise FetchError(f"{url} announces {total / 1e6:.0f} MB, far more than two generators "
                                 "(about 91 MB): refused (not the chapter's zip?).")
            name = PurePosixPath(urllib.parse.urlsplit(url).path).name or host
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                      disable=not progress, leave=False) as bar:
                got = _copy_capped(answer, out, cap, url, bar)
            if total is not None and got < total:
                raise http.client.IncompleteRead(b"", total - got)
            return answer.headers.get_content_type()
    except urllib.error.HTTPError as error:
        hint = " (the link is dead or has moved)" if error.code in (404, 410) else ""
        raise FetchError(f"{url} answered HTTP {error.code} {error.reason}{hint}.") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError):
            raise FetchError(f"{host} did not answer within {timeout:g} s (offline, or the server "
                             "is down?).") from None
        raise FetchError(f"could not reach {host} ({reason}): offline, or the address is wrong?") from None
    except (http.client.HTTPException, ConnectionError, TimeoutError) as error:
        got = out.stat().st_size / 1e6 if out.exists() else 0.0
        why = (f"no data for {timeout:g} s" if isinstance(error, TimeoutError)
               else f"the connection broke: {type(error).__name__}")
        raise FetchError(f"the download of {url} was cut short after {got:.1f} MB ({why}).") from None


def _not_a_zip(path: Path, label: str, content_type: str = "") -> FetchError:
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if content_type == "text/html" or looks_like_html(head):
        return FetchError(f"{label} is a web page (HTML, {path.stat().st_size:,} bytes), not a zip: "
                          "the link may have moved, or the site shows a notice or sign-in page (open "
                          "it in a browser to see).")
    return FetchError(f"{label} is not a complete zip file ({path.stat().st_size:,} bytes): the "
                      "download was cut short, or it is not the chapter's hair.zip.")


def _members(archive: zipfile.ZipFile, label: str) -> dict[str, zipfile.ZipInfo]:
    """The two generators' members, wherever they sit; refuses the zip if any name is unsafe."""
    found: dict[str, list[zipfile.ZipInfo]] = {name: [] for name in PUBLISHED_FILES}
    for info in archive.infolist():
        try:
            parts = member_parts(info)
        except UnsafeArchiveError as error:
            raise FetchError(f"{label} is refused: {error} (a zip whose names point outside its "
                             "folder is not the chapter's).") from None
        if not parts or info.is_dir() or parts[0] == "__MACOSX" or parts[-1].startswith("._"):
            continue
        if parts[-1] in found:
            found[parts[-1]].append(info)
    for name, infos in found.items():
        if not infos:
            inner = [i.filename for i in archive.infolist() if i.filename.lower().endswith(".zip")]
            if inner:
                raise FetchError(f"{label} holds another zip ({inner[0]}) instead of {name}: it was "
                                 f"zipped twice. Unzip it once and pass the zip inside with --url.")
            listing = ", ".join(i.filename for i in archive.infolist()[:5]) or "nothing"
            raise FetchError(f"{label} holds no {name} (it holds {listing}"
                             f"{' ...' if len(archive.infolist()) > 5 else ''}): not the chapter's "
                             "hair.zip?")
        if len(infos) > 1:
            raise FetchError(f"{label} holds {len(infos)} files named {name} "
                             f"({', '.join(i.filename for i in infos)}): which one is meant is unclear.")
    return {name: infos[0] for name, infos in found.items()}


def _extract(zip_path: Path, staging: Path, label: str, content_type: str = "") -> None:
    """The two generators from `zip_path` into `staging`, nothing else, each capped in size."""
    if not zipfile.is_zipfile(zip_path):
        raise _not_a_zip(zip_path, label, content_type)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for name, info in _members(archive, label).items():
                what = f"{info.filename} in {label}"
                if info.file_size > MAX_MEMBER_BYTES:
                    raise FetchError(f"{what} declares {info.file_size / 1e6:,.0f} MB, far larger than a "
                                     "generator (45.6 MB): refused (a zip bomb?).")
                with archive.open(info) as src:
                    _copy_capped(src, staging / name, MAX_MEMBER_BYTES, what)
    except FetchError:
        raise  # already says what is wrong (a RuntimeError too: not "damaged or unreadable")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
        raise FetchError(f"{label} is damaged or unreadable ({type(error).__name__}: {error}).") from None


def _gather(source: str, staging: Path, timeout: float, progress: bool) -> None:
    """Both generator files from `source` into `staging` (nothing verified yet)."""
    kind, where = _classify(source)
    if kind == "http-zip":
        download = staging / "download.zip"
        content_type = _download(str(where), download, timeout, progress, MAX_DOWNLOAD_BYTES)
        _extract(download, staging, str(where), content_type)
        download.unlink()
    elif kind == "http-folder":
        for name in PUBLISHED_FILES:
            url = str(where).rstrip("/") + "/" + name
            _download(url, staging / name, timeout, progress, MAX_MEMBER_BYTES)
    elif Path(where).is_dir():
        for name in PUBLISHED_FILES:
            if not (Path(where) / name).is_file():
                raise FetchError(f"{where} holds no {name}.")
            with open(Path(where) / name, "rb") as src:
                _copy_capped(src, staging / name, MAX_MEMBER_BYTES, str(Path(where) / name))
    elif Path(where).is_file():
        _extract(Path(where), staging, str(where))
    else:
        raise FetchError(f"not found: {where} (no such zip file or folder).")


def _verify(path: Path, label: str) -> None:
    """Load `path` safely and strictly into the chapter's `Generator(3, 64, 9)`, or FetchError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - every way a file can fail to load ends the same
        raise FetchError(f"{label}: {unreadable_reason(path, error)}") from None
    with torch.device("meta"):  # the shapes without allocating and initialising 11 M parameters
        model = Generator(3, **PUBLISHED_SIZES)
    try:
        load_state_dict_checked(model, state, label, assign=True)
    except (CheckpointError, RuntimeError, TypeError) as error:
        raise FetchError(f"{' '.join(str(error).split())} The chapter's files are state_dicts of "
                         "Generator(3, 64, 9).") from None
    if not all(torch.is_floating_point(t) for t in state.values()):
        raise FetchError(f"{label} holds weights that are not floating-point numbers.")
    bad = not_finite(state)
    if bad:
        raise FetchError(f"{label} holds weights that are not finite numbers (NaN or Inf in {bad[0]}"
                         f"{' and others' if len(bad) > 1 else ''}): not the chapter's generators.")


def _place(staging: Path, dest: Path) -> list[Path]:
    """Rename both verified files into `dest`; if the second fails, put the first back."""
    placed: list[tuple[Path, Path | None]] = []
    try:
        for name in PUBLISHED_FILES:
            target, previous = dest / name, None
            if target.exists():  # only with force: keep a copy to undo with
                previous = staging / f"{name}.previous"
                try:
                    os.link(target, previous)
                except OSError:  # a file system without hard links
                    shutil.copy2(target, previous)
            os.replace(staging / name, target)
            placed.append((target, previous))
    except BaseException:
        for target, previous in reversed(placed):
            if previous is not None:
                os.replace(previous, target)
            else:
                target.unlink(missing_ok=True)
        raise
    return [target for target, _ in placed]


def _write_record(dest: Path, source: str, hashes: dict[str, str]) -> None:
    record = {"source": source, "sha256": hashes,
              "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "generator": "Generator(3, 64, 9)", "image_size": PUBLISHED_IMAGE_SIZE}
    atomic_write_text(dest / RECORD, json.dumps(record, indent=1))


def manual_steps(source: str, dest: Path) -> str:
    """What to do by hand when the fetch cannot."""
    try:
        zip_url = source if _classify(source)[0] == "http-zip" else PUBLISHED_WEIGHTS_URL
    except FetchError:
        zip_url = PUBLISHED_WEIGHTS_URL
    return (f"By hand: download {zip_url} (in a browser), unzip it, and put gen_black.pth and "
            f"gen_blond.pth in {dest}; or run "
            f"`{python_command('utils.published', 'fetch', '--url', 'path/to/hair.zip', '--dest', dest)}` "
            "with the zip you downloaded.")


STAGING_PREFIX = ".published-"  # a fetch in progress; left behind only when the process was killed
STAGING_MARK = ".made-by-ch06-fetch"  # inside each staging folder: what marks it as the fetch's own


def _make_staging(dest: Path) -> Path:
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest))
    (staging / STAGING_MARK).write_text("A download of `python -m utils.published fetch` in progress; "
                                        "a later fetch removes this folder if it was left behind.\n")
    return staging


def _remove_stale_staging(dest: Path, keep: Path) -> int:
    """Remove what fetches killed mid-download left (up to ~90 MB each): only folders that carry
    the fetch's own mark, never a reader's `.published-backup/`. Called while this fetch holds
    the folder's lock, so no other fetch is running there. Returns how many were removed."""
    removed = 0
    for old in dest.glob(STAGING_PREFIX + "*"):
        if old != keep and old.is_dir() and not old.is_symlink() and (old / STAGING_MARK).is_file():
            shutil.rmtree(old, ignore_errors=True)
            removed += 1
    return removed


def fetch_published_generators(url: str | None = None, dest: PathLike | None = None, *,
                               force: bool = False, timeout: float = 60.0, progress: bool = True
                               ) -> list[Path]:
    """Download, check and place the chapter's `gen_black.pth` and `gen_blond.pth` in `dest`.

    `url`: a zip URL, a folder URL, a `file://` URL or a local path (default:
    `$CH06_WEIGHTS_URL`, else `PUBLISHED_WEIGHTS_URL`). `dest`: default `files/`.
    Existing generators in `dest` are kept (FetchError saying so) unless `force`; a second
    call after a successful one does nothing. Any failure raises `FetchError` with the
    manual steps and leaves `dest` exactly as it was. Returns the two paths.
    """
    if timeout <= 0:
        raise SettingError(f"timeout must be positive, got {timeout}.")
    source = weights_source(url)
    dest = output_folder(dest, "--dest", create=False) if dest is not None else files_dir()
    created = not dest.exists()
    try:
        with hold(dest, OUTPUT_LOCK, advice="run the fetch again once it is done"):
            return _fetch_into(dest, source, force, timeout, progress)
    finally:
        if created and dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()


def _fetch_into(dest: Path, source: str, force: bool, timeout: float, progress: bool) -> list[Path]:
    """`fetch_published_generators` once the folder's lock is held."""
    targets = [dest / name for name in PUBLISHED_FILES]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        if published_in_place(dest):
            print(f"The chapter's generators are already in {dest}; nothing to do "
                  "(--force downloads them again).")
            return targets
        raise FetchError(
            f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''} (your own "
            "training?) and are kept: nothing was downloaded. To replace them with the chapter's "
            "published generators, move them elsewhere first or run again with --force "
            "(force=True in Python).")
    staging = _make_staging(dest)
    try:
        try:
            _gather(source, staging, timeout, progress)
            for name in PUBLISHED_FILES:
                _verify(staging / name, f"{name} from {source}")
        except FetchError as error:
            raise FetchError(f"{' '.join(str(error).split())} Nothing in {dest} was changed. "
                             f"{manual_steps(source, dest)}") from None
        hashes = {name: _sha256(staging / name) for name in PUBLISHED_FILES}
        placed = _place(staging, dest)
        _write_record(dest, source, hashes)
        record = OwnedFiles.load(dest)
        for name in (*PUBLISHED_FILES, RECORD):
            record.claim(name, OWNER)
        record.save()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    removed = _remove_stale_staging(dest, staging)  # only now: a failure above changed nothing
    print(f"The chapter's generators are in place: {placed[0]} and {placed[1]} (Generator(3, 64, 9), "
          f"trained at {PUBLISHED_IMAGE_SIZE} px; from {source})."
          + (f" Removed {removed} unfinished download folder(s) of an earlier fetch that was stopped."
             if removed else ""))
    return placed


@command
def main(argv: Sequence[str] | None = None) -> int:
    """`python -m utils.published fetch [--url URL] [--dest FOLDER] [--force] [--timeout S]`."""
    parser = argparse.ArgumentParser(prog="python -m utils.published",
                                     description="The chapter's trained generators (hair.zip).")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download hair.zip, check gen_black.pth / gen_blond.pth, "
                                         "place them in files/")
    fetch.add_argument("--url", default=None,
                       help=f"a zip URL, a folder URL holding the two files, a file:// URL or a local "
                            f"path to hair.zip (default: ${WEIGHTS_URL_ENV}, else {PUBLISHED_WEIGHTS_URL})")
    fetch.add_argument("--dest", type=Path, default=None,
                       help="folder for the two files (default: files/, or $CH06_FILES)")
    fetch.add_argument("--force", action="store_true",
                       help="replace gen_black.pth / gen_blond.pth already in the folder")
    fetch.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    args = parser.parse_args(argv)
    fetch_published_generators(args.url, args.dest, force=args.force, timeout=args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
