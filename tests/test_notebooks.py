"""The notebooks and their py:percent twins: in sync, committed without outputs, teaching-shaped.

Executing them, and reading what they print, is tests/test_notebooks_run.py's job.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

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


def committed_text(path: Path) -> str | None:
    """The text of `path` that a commit takes: git's staged copy (in a clean clone, the
    committed one); the file itself when git does not track it yet; None outside a git checkout.

    The no-outputs rule is about the repository, not a reader's working copy: a reader who
    runs a notebook and saves it has outputs in it, and `make test` must still pass for them.
    """
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=path.parent, capture_output=True, text=True,
                              encoding="utf-8")

    try:
        if git("rev-parse", "--is-inside-work-tree").returncode != 0:
            return None
        staged = git("show", f":./{path.name}")  # ":./" is relative to cwd, whatever the git root
    except OSError:  # no git installed: nothing here is committed from this copy
        return None
    return staged.stdout if staged.returncode == 0 else path.read_text(encoding="utf-8")


def outputs_in(text: str) -> list[int]:
    """The indices of the code cells that carry outputs or an execution count."""
    cells = nbformat.reads(text, as_version=4).cells
    return [k for k, c in enumerate(cells) if c.cell_type == "code" and
            (c.get("outputs") or c.get("execution_count") is not None)]


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(nb_path):
    text = committed_text(nb_path)
    if text is None:
        pytest.skip("not a git checkout: nothing is committed from here")
    assert not outputs_in(text), (
        f"{nb_path.name} is staged with outputs: clear them (Edit > Clear Outputs of All Cells, then "
        f"save), `git add` it again, then commit")


def test_a_notebook_run_and_saved_by_a_reader_passes_the_outputs_check(tmp_path):
    """The check reads what is staged: a working copy full of outputs passes, the same
    notebook staged fails, and a notebook git does not track yet is read from the file."""
    clean = (REPO_ROOT / "notebooks" / "02_build_models.ipynb").read_text(encoding="utf-8")
    run = nbformat.reads(clean, as_version=4)
    code = next(c for c in run.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="Python 3.11 ...\n")]
    code.execution_count = 1
    path = tmp_path / "02_build_models.ipynb"
    path.write_text(clean, encoding="utf-8")
    assert committed_text(path) is None  # outside a git checkout: skipped, not failed
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", path.name], cwd=tmp_path, check=True)
    path.write_text(nbformat.writes(run), encoding="utf-8")  # the reader ran it and saved it
    assert outputs_in(path.read_text(encoding="utf-8")) == [run.cells.index(code)]
    assert not outputs_in(committed_text(path))
    subprocess.run(["git", "add", path.name], cwd=tmp_path, check=True)
    assert outputs_in(committed_text(path))  # staged with outputs: the check fails
    new = tmp_path / "06_new.ipynb"
    new.write_text(nbformat.writes(run), encoding="utf-8")
    assert outputs_in(committed_text(new))


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_and_its_twin_name_a_kernel(nb_path):
    """Without a kernelspec, Jupyter opens every notebook with a "Select Kernel" dialog."""
    for notebook in (nbformat.read(nb_path, as_version=4), jupytext.read(nb_path.with_suffix(".py"))):
        assert notebook.metadata.get("kernelspec", {}).get("name") == "python3", nb_path.name


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


def test_notebook_04_warns_before_translating_a_photo_with_built_in_face_generators():
    # the warning itself (for generators trained on the built-in faces) is tested in test_translate.py
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "04_round_trip.ipynb", as_version=4)
    cells = [c.source for c in notebook.cells if c.cell_type == "code"]
    photo = next(c for c in cells if "translate_photo(" in c)
    assert photo.index("print(gens.photo_warning())") < photo.index("translate_photo(")
    assert "gens.label" in photo  # the pictures say which generators made them
