"""The notebooks and their py:percent twins: in sync, committed without outputs, teaching-shaped.

Executing them is nbval's job (`CH06_FAST=1 pytest --nbval-lax notebooks`, part of `make test`).
"""

from __future__ import annotations

import re

import jupytext
import nbformat
import pytest

from utils.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_download_and_split", "02_build_models", "03_train_cyclegan", "04_round_trip",
            "05_glasses_exercise"]


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_the_five_chapter_notebooks_exist_with_twins():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED
    for nb_path in NOTEBOOKS:
        assert nb_path.with_suffix(".py").is_file(), f"{nb_path.name} has no .py twin"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_its_py_twin(nb_path):
    notebook = nbformat.read(nb_path, as_version=4)
    twin = jupytext.read(nb_path.with_suffix(".py"))
    assert _cells(notebook) == _cells(twin), (
        f"{nb_path.name} and its .py twin differ: run `make notebooks` (jupytext --sync)")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(nb_path):
    notebook = nbformat.read(nb_path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, (
                f"{nb_path.name} carries outputs: clear them before committing")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_starts_with_the_set_up_cell_and_explains_each_step(nb_path):
    cells = nbformat.read(nb_path, as_version=4).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    first_code = next(c for c in cells if c.cell_type == "code")
    assert "google.colab" in first_code.source and "start(" in first_code.source
    # short markdown before each step: never three code cells in a row
    kinds = "".join("c" if c.cell_type == "code" else "m" for c in cells)
    assert "ccc" not in kinds, f"{nb_path.name}: add a sentence of markdown between code cells"
    long_cells = [c.source[:40] for c in cells if c.cell_type == "code" and
                  len(c.source.strip().splitlines()) > 15]
    assert not long_cells, f"{nb_path.name}: move logic from long cells into utils/: {long_cells}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_names_the_chapters_listings(nb_path):
    text = "\n".join(c.source for c in nbformat.read(nb_path, as_version=4).cells
                     if c.cell_type == "markdown")
    assert re.search(r"[Ll]isting 6\.\d|[Ee]xercise 6\.\d", text)
