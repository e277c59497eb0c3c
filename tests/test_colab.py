"""Colab end to end: the repository's address in one place, and files/ on Google Drive.

Nothing here reaches Colab or GitHub: the address is checked in the files that carry it,
and Google Drive is a stand-in module.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import types

import jupytext
import nbformat
import pytest

from utils import notebook, repo
from utils.cli import SettingError
from utils.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _first_code_cell(path) -> str:
    nb = nbformat.read(path, as_version=4) if path.suffix == ".ipynb" else jupytext.read(path)
    return next(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", [*NOTEBOOKS, *(nb.with_suffix(".py") for nb in NOTEBOOKS)],
                         ids=lambda p: p.name)
def test_every_first_cell_clones_the_address_in_utils_repo(path):
    cell = _first_code_cell(path)
    assert re.findall(r'"CH06_REPO", "([^"]+)"', cell) == [repo.REPO]
    assert "https://github.com/{REPO}" in cell  # the clone uses it, nothing else spells it out
    assert "start(drive=ON_DRIVE)" in cell


def test_every_readme_badge_opens_its_notebook_from_the_address_in_utils_repo():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    badges = re.findall(r"\(https://colab\.research\.google\.com/github/[^)]+\)", readme)
    assert badges == [f"({repo.colab_url(nb.stem)})" for nb in NOTEBOOKS]  # one per notebook, in order
    assert not repo.disagreements()


def test_set_repo_rewrites_every_place_and_keeps_the_notebooks_valid(tmp_path):
    (tmp_path / "utils").mkdir()
    shutil.copy(REPO_ROOT / "utils" / "repo.py", tmp_path / "utils")
    shutil.copy(REPO_ROOT / "README.md", tmp_path)
    shutil.copytree(REPO_ROOT / "notebooks", tmp_path / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    changed = repo.set_repo("jane-doe/my.cyclegan", root=tmp_path)
    assert len(changed) == 2 + 2 * len(NOTEBOOKS)
    assert repo.disagreements("jane-doe/my.cyclegan", root=tmp_path) == []
    assert repo.disagreements(repo.REPO, root=tmp_path)  # the old address is gone everywhere
    for nb in NOTEBOOKS:
        copy = tmp_path / "notebooks" / nb.name
        json.loads(copy.read_text(encoding="utf-8"))  # still valid JSON
        cells = [(c.cell_type, c.source) for c in nbformat.read(copy, as_version=4).cells]
        twin = [(c.cell_type, c.source) for c in jupytext.read(copy.with_suffix(".py")).cells]
        assert [s.strip() for _, s in cells] == [s.strip() for _, s in twin]  # still paired
        assert '"CH06_REPO", "jane-doe/my.cyclegan"' in _first_code_cell(copy)


@pytest.mark.parametrize("bad", ["ch06-cyclegan", "a/b/c", "jane/name with space", "https://github.com/a/b"])
def test_set_repo_refuses_what_is_not_owner_slash_name(tmp_path, bad):
    with pytest.raises(SettingError, match="OWNER/NAME"):
        repo.set_repo(bad, root=tmp_path)


def test_check_command_reports_agreement(capsys):
    assert repo.main(["--check"]) == 0
    assert repo.REPO in capsys.readouterr().out


# ------------------------------------------------------------------------- Google Drive
@pytest.fixture
def fake_colab(monkeypatch):
    mounted: list[str] = []
    drive = types.SimpleNamespace(mount=mounted.append)
    colab = types.ModuleType("google.colab")
    colab.drive = drive
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.delenv("CH06_FILES", raising=False)
    return mounted


def test_on_drive_mounts_drive_and_points_files_there(fake_colab):
    folder = notebook.keep_files_on_drive()
    assert fake_colab == ["/content/drive"]
    assert str(folder) == notebook.DRIVE_FILES  # utils.paths.files_dir() reads CH06_FILES


def test_on_drive_keeps_a_folder_the_reader_chose(fake_colab, monkeypatch, tmp_path):
    monkeypatch.setenv("CH06_FILES", str(tmp_path))
    assert notebook.keep_files_on_drive() == tmp_path.resolve()


def test_on_drive_outside_colab_only_says_so(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("CH06_FILES", raising=False)
    assert notebook.keep_files_on_drive() is None
    assert "ON_DRIVE is for Google Colab" in capsys.readouterr().out
