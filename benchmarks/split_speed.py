"""How long listing 6.1's split takes, as printed and as done in utils.prepare.

Builds a full-size fake CelebA in a temporary folder (202,599 rows of random 1/-1
attributes with about CelebA's rates: ~24% Black_Hair, ~15% blond only, ~0.1% both;
202,599 tiny dummy image files that start like JPEGs) and times, in one run:

  (a)  the chapter's selection: `pd.read_csv` of all columns, then a per-row `df.iloc[i]`
       loop deciding each row's folder (destination list only, no file touched);
  (a') the chapter's whole loop, moving the files out of the (fake) download, run last
       (skip with --no-chapter-moves);
  (b)  ours: `read_csv(usecols=...)` of the 3 needed columns, then the vectorised selection
       (`utils.prepare.select_celeba`, two boolean masks);
  (c)  our whole `split_celeba` (linking every selected file), then its re-run.

It prints a table; it is not a test. Run from the repository root:

    python benchmarks/split_speed.py [--rows 202599] [--no-chapter-moves] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils.datasets import CELEBA, CELEBA_ATTRIBUTES  # noqa: E402
from utils.prepare import (  # noqa: E402
    read_celeba_attributes,
    select_celeba,
    split_celeba,
)

# the first bytes of a JPEG: the split checks that each file starts like an image (it reads no more)
JPEG_START = b"\xff\xd8\xff\xe0"

# CelebA: 48,472 black (23.9%), 29,980 blond only (14.8%), a few hundred with both flags
BLACK_RATE, BLOND_IF_NOT_BLACK, BLOND_IF_BLACK = 0.239, 0.195, 0.005


def make_fake_celeba(root: Path, rows: int, seed: int = 0) -> None:
    """The Kaggle layout with random attributes and 4-byte image files (a JPEG's first bytes)."""
    rng = np.random.default_rng(seed)
    values = np.where(rng.random((rows, len(CELEBA_ATTRIBUTES))) < 0.3, 1, -1).astype(np.int8)
    black = rng.random(rows) < BLACK_RATE
    blond = rng.random(rows) < np.where(black, BLOND_IF_BLACK, BLOND_IF_NOT_BLACK)
    values[:, CELEBA_ATTRIBUTES.index("Black_Hair")] = np.where(black, 1, -1)
    values[:, CELEBA_ATTRIBUTES.index("Blond_Hair")] = np.where(blond, 1, -1)
    frame = pd.DataFrame(values, columns=list(CELEBA_ATTRIBUTES))
    frame.insert(0, "image_id", [f"{k:06d}.jpg" for k in range(1, rows + 1)])
    frame.to_csv(root / CELEBA.csv, index=False)
    images = root / CELEBA.image_dir
    images.mkdir(parents=True)
    for name in frame["image_id"]:
        (images / name).write_bytes(JPEG_START)


def chapter_destinations(df: pd.DataFrame) -> list[str]:
    """Listing 6.1's loop as printed, computing each row's destination instead of moving it."""
    destinations = []
    for i in range(len(df)):
        dfi = df.iloc[i]
        if dfi["Black_Hair"] == 1:
            destinations.append(f"files/black/{dfi['image_id']}")
        elif dfi["Blond_Hair"] == 1:
            destinations.append(f"files/blond/{dfi['image_id']}")
    return destinations


def chapter_moves(csv: Path, folder: Path, out: Path) -> None:
    """Listing 6.1 as printed (paths under `out`): moves, and swallows every error."""
    df = pd.read_csv(csv)
    os.makedirs(out / "black", exist_ok=True)
    os.makedirs(out / "blond", exist_ok=True)
    for i in range(len(df)):
        dfi = df.iloc[i]
        if dfi["Black_Hair"] == 1:
            try:
                shutil.move(f"{folder}/{dfi['image_id']}", f"{out}/black/{dfi['image_id']}")
            except Exception:  # noqa: BLE001, S110 - the chapter's bare except: pass
                pass
        elif dfi["Blond_Hair"] == 1:
            try:
                shutil.move(f"{folder}/{dfi['image_id']}", f"{out}/blond/{dfi['image_id']}")
            except Exception:  # noqa: BLE001, S110
                pass


def timed(label: str, results: list[tuple[str, float]], fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    results.append((label, time.perf_counter() - start))
    print(f"  {label}: {results[-1][1]:.2f} s", flush=True)
    return value


def report_table(results: list[tuple[str, float]], counts: dict[str, int]) -> None:
    t = dict(results)
    print()
    print(f"counts: {counts['black']:,} black, {counts['blond']:,} blond")
    print(f"{'step':<58}{'seconds':>10}")
    for label, seconds in results:
        print(f"{label:<58}{seconds:>10.3f}")
    a1, a2 = t["(a1) chapter: read_csv (all 41 columns)"], t["(a2) chapter: per-row iloc selection"]
    b1, b2 = t["(b1) ours: read_csv(usecols)"], t["(b2) ours: vectorised selection"]
    print(f"ratio (a) / (b), selection only (a2 / b2):                  {a2 / b2:,.0f}x")
    print(f"ratio (a) / (b), CSV reading included ((a1+a2) / (b1+b2)): {(a1 + a2) / (b1 + b2):,.0f}x",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=202_599)
    parser.add_argument("--no-chapter-moves", action="store_true", help="skip (a'), the slowest part")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the temporary data set goes (e.g. /dev/shm: a busy disk makes "
                             "creating and deleting 400,000+ files take minutes)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="split-speed-", dir=args.dir))
    results: list[tuple[str, float]] = []
    try:
        root = tmp / "files"
        root.mkdir()
        print(f"{args.rows:,} rows in {tmp}", flush=True)
        timed("setup: write CSV and dummy images", results, make_fake_celeba, root, args.rows)
        csv = root / CELEBA.csv
        df = timed("(a1) chapter: read_csv (all 41 columns)", results, pd.read_csv, csv)
        destinations = timed("(a2) chapter: per-row iloc selection", results, chapter_destinations, df)
        frame = timed("(b1) ours: read_csv(usecols)", results, read_celeba_attributes, root)
        selection = timed("(b2) ours: vectorised selection", results, select_celeba, frame)
        ours = [f"files/{domain}/{n}" for domain, chosen in selection.items() for n in chosen]
        assert sorted(destinations) == sorted(ours), "the vectorised rule must pick the chapter's rows"
        with redirect_stdout(StringIO()):
            report = timed("(c) ours: split_celeba (links every file)", results, split_celeba, root)
            rerun = timed("(c') ours: split_celeba re-run (all skipped)", results, split_celeba, root)
        print(f"  (c) and (c'): {report.linked:,} linked, {report.copied:,} copied; "
              f"re-run skipped {rerun.skipped:,}", flush=True)
        assert rerun.skipped == report.linked + report.copied
        if not args.no_chapter_moves:  # last: it empties the (fake) download, as the chapter does
            timed("(a') chapter: whole listing 6.1 (iloc loop + moves)", results, chapter_moves,
                  csv, root / CELEBA.image_dir, tmp / "chapter")
            moved = sum(len(os.listdir(tmp / "chapter" / d)) for d in ("black", "blond"))
            assert moved == sum(report.counts.values()), "the chapter's loop must move the same faces"
        report_table(results, report.counts)
    finally:
        start = time.perf_counter()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"(clean-up of {tmp}: {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
