"""`make docs`: regenerate the README's pictures and numbers from the code, never by hand.

* `docs/synthetic_faces.png`: the built-in faces above their hair-swapped ground truth.
* `docs/demo_round_trip.png` and the table between the `demo-metrics` markers in README.md:
  copied from the last `make demo` run (`files/demo/`), so the README shows what the demo
  really measured. With the demo's mask generator the grid shows, under each translation, the
  mask of where it edited (`utils.inference.round_trip_rows`).

    python -m utils.docs [--demo DIR]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from utils.cli import UserError, command
from utils.paths import REPO_ROOT, files_dir

DOCS = REPO_ROOT / "docs"
README = REPO_ROOT / "README.md"
START, END = "<!-- demo-metrics:start -->", "<!-- demo-metrics:end -->"


class ReadmeMarkersError(UserError, ValueError):
    """README.md lacks the markers between which the demo's table goes."""


SHOWN = ("hair_accuracy", "psnr_outside_hair", "ssim_outside_hair", "l1_to_truth", "cycle_l1")


def metrics_table(metrics: dict) -> str:
    """The demo's held-out scores as a Markdown table, with the run's time and device."""
    directions = [k for k in ("black_to_blond", "blond_to_black") if k in metrics]
    keys = [k for k in SHOWN if all(k in metrics[d] for d in directions)]
    lines = ["| held-out faces | " + " | ".join(d.replace("_", " ") for d in directions) + " |",
             "| --- |" + " ---: |" * len(directions)]
    for key in keys:
        cells = [f"{metrics[d][key]:.3g}" if metrics[d][key] is not None else "–" for d in directions]
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    lines.append("")
    precision = f", trained in {metrics['precision']}" if "precision" in metrics else ""
    lines.append(f"Measured by `make demo` in {metrics.get('minutes', float('nan')):.1f} minutes "
                 f"on {metrics.get('device', 'an unknown device')}{precision}.")
    return "\n".join(lines)


def save_small(source: Path, target: Path, width: int = 640) -> None:
    """A copy of a figure small enough for git: at most `width` px wide, 256 colours."""
    from PIL import Image

    with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail((width, width * 4))
        image.quantize(colors=256).save(target, optimize=True)


def replace_between_markers(text: str, block: str) -> str:
    """`text` with everything between the two markers replaced by `block`."""
    if START not in text or END not in text:
        raise ReadmeMarkersError(f"README.md has no {START} ... {END} markers to fill: put them back "
                                 "around the demo's table (git diff README.md shows where they were).")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


@command
def main(argv: Sequence[str] | None = None) -> int:
    """`make docs`. Exit status 0, or 2 with one `error:` line (no finished demo yet; `utils.cli`)."""
    parser = argparse.ArgumentParser(prog="python -m utils.docs", description=__doc__.split("\n")[0])
    parser.add_argument("--demo", type=Path, default=None, help="the demo's output folder")
    args = parser.parse_args(argv)
    from utils.synthetic import contact_sheet

    DOCS.mkdir(parents=True, exist_ok=True)
    contact_sheet(0).save(DOCS / "synthetic_faces.png", optimize=True)  # an error here stops make docs
    print(f"Wrote {DOCS / 'synthetic_faces.png'}")
    demo = args.demo or files_dir() / "demo"
    metrics_file, grid = demo / "metrics.json", demo / "round_trip_held_out.png"
    if not metrics_file.is_file() or not grid.is_file():
        missing = metrics_file if not metrics_file.is_file() else grid
        raise UserError(f"No finished demo in {demo} ({missing.name} is missing; the picture of the "
                        f"built-in faces was updated): run `make demo` first for the grid and the numbers.")
    save_small(grid, DOCS / "demo_round_trip.png")
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    README.write_text(replace_between_markers(README.read_text(encoding="utf-8"),
                                              metrics_table(metrics)), encoding="utf-8")
    print(f"Updated {DOCS / 'synthetic_faces.png'}, {DOCS / 'demo_round_trip.png'} and {README}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
