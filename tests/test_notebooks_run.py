"""Every notebook run top to bottom in fast mode, as a reader's Jupyter runs it, and read as a
reader reads it: no error, no red progress bar, no traceback or warning printed, a training
run's printed estimate close to the iterations it then ran, and a reader's mistake (a photo
without a face, a photo that is not there) shown in one line.

The five run in order in fresh kernels of this Python (`tests/notebook_kernel.py`), on one
fresh `CH06_FILES` folder whose name has a space (notebook 03 trains the pair that 04 shows).
This is `make test`'s notebook run: about a minute on a 2-core CPU.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from PIL import Image

from tests.notebook_kernel import CellRun, kernel
from utils.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NAMES = [p.stem for p in NOTEBOOKS]
TRAINING = ["03_train_cyclegan", "05_glasses_exercise"]  # the notebooks whose cells show training bars

# What utils.run_loop prints: the estimate, early, and where the run wrote its history.csv
ESTIMATE = re.compile(r"Estimate: .+ iterations take .+ \((?P<per>[\d.e-]+) s per iteration, the median of "
                      r"iterations? (?P<first>[\d,]+)(?:–(?P<last>[\d,]+))?")
STOPPED = re.compile(r"^Stopped at iteration [\d,]+ \(\w+\); wrote (?P<out>.+)\.$", re.MULTILINE)

# A reader's mistakes, made in notebook 04's kernel after it ran: the cell must fail (it stops
# "Run All") with the command line's one line, not a traceback.
MISTAKES = {
    "no face": ("photo, name = photo_from(None, {blank!r})\nframe_like_celeba(photo, name)",
                "error: no face found in "),
    "no photo": ("photo_from(None, {missing!r})", "error: "),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[CellRun]]:
    """Each notebook's executed cells, and under "mistake: ..." the mistakes' cells."""
    files = tmp_path_factory.mktemp("My Course") / "ch06 files"  # a folder name with a space
    env = {**os.environ, "CH06_FAST": "1", "CH06_FILES": str(files)}
    env.pop("CH06_DEBUG", None)
    blank = files.parent / "blank.png"
    Image.new("RGB", (320, 400), "white").save(blank)
    done: dict[str, list[CellRun]] = {}
    for path in NOTEBOOKS:
        with kernel(path.parent, env) as running:
            done[path.stem] = running.run_notebook(path)
            if path.stem == "04_round_trip":
                running.run("from utils.faces import frame_like_celeba\n"
                            "from utils.translate import photo_from")
                for what, (code, _) in MISTAKES.items():
                    done[f"mistake: {what}"] = [running.run(code.format(
                        blank=str(blank), missing=str(files.parent / "not there.jpg")))]
    return done


def _code_cells(name: str) -> int:
    return sum(c.cell_type == "code" for c in nbformat.read(REPO_ROOT / "notebooks" / f"{name}.ipynb",
                                                             as_version=4).cells)


@pytest.mark.parametrize("name", NAMES)
def test_every_cell_runs_without_an_error(runs, name):
    cells = runs[name]
    failed = [(c.source.splitlines()[0], c.errors) for c in cells if c.errors]
    assert not failed, failed
    assert len(cells) == _code_cells(name)


@pytest.mark.parametrize("name", NAMES)
def test_no_progress_bar_ends_red(runs, name):
    """Jupyter's bar turns red ("danger") for a loop left early or closed short of its total:
    to a reader, a failure. Every bar ends green ("success")."""
    styles = [c.bar_styles for c in runs[name] if c.bar_styles]
    assert all("danger" not in s and s[-1] == "success" for s in styles), styles
    if name in TRAINING:
        assert styles  # the check saw the bars it is about


@pytest.mark.parametrize("name", NAMES)
def test_no_cell_prints_a_traceback_or_a_warning(runs, name):
    for cell in runs[name]:
        assert "Traceback" not in cell.text, cell.text
        assert not re.search(r"\w*Warning\b", cell.text), cell.text


@pytest.mark.parametrize("what", MISTAKES)
def test_a_readers_mistake_is_one_line_and_stops_the_run(runs, what):
    (cell,) = runs[f"mistake: {what}"]
    lines = cell.text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(MISTAKES[what][1]), cell.text
    assert not cell.errors  # no traceback output beside it
    reply = next(content for kind, content in cell.messages if kind == "execute_reply")
    assert reply["status"] == "error"  # "Run All" stops there


@pytest.mark.parametrize("name", TRAINING)
def test_a_runs_printed_estimate_matches_the_iterations_it_then_ran(runs, name):
    """Notebook 03 once announced 4.7 h for a run that took 27 minutes: an estimate taken on
    the warm-up iterations. The printed seconds per iteration must be within 3x of the
    iterations that followed it (history.csv's clock), whatever the machine."""
    trained = [cell.text for cell in runs[name] if STOPPED.search(cell.text)]
    assert trained, "no training run printed where it wrote"
    for text in trained:
        estimate = ESTIMATE.search(text)
        assert estimate, f"no estimate printed before the run:\n{text}"
        history = pd.read_csv(Path(STOPPED.search(text)["out"]) / "history.csv")
        timed_until = int((estimate["last"] or estimate["first"]).replace(",", ""))
        after = history[history["iteration"] >= timed_until]["seconds"].to_numpy()
        assert len(after) >= 3, "too few iterations after the estimate to check it"
        actual = (after[-1] - after[0]) / (len(after) - 1)
        ratio = float(estimate["per"]) / actual
        assert 1 / 3 <= ratio <= 3, f"estimate {estimate['per']} s per iteration, then {actual:.3g} s"
