"""The README's numbers come from the demo's metrics.json, between markers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from utils import docs
from utils.paths import REPO_ROOT


def _metrics():
    direction = {"hair_accuracy": 0.95, "psnr_outside_hair": 23.456, "ssim_outside_hair": 0.9,
                 "l1_to_truth": 0.03, "cycle_l1": 0.02, "count": 100}
    return {"black_to_blond": direction, "blond_to_black": {**direction, "hair_accuracy": 0.91},
            "minutes": 14.2, "device": "cpu"}


def test_metrics_table_lists_both_directions():
    table = docs.metrics_table(_metrics())
    assert "| `hair_accuracy` | 0.95 | 0.91 |" in table
    assert "| `psnr_outside_hair` | 23.5 | 23.5 |" in table
    assert "14.2 minutes on cpu." in table  # an older metrics.json: no precision recorded
    with_precision = docs.metrics_table({**_metrics(), "precision": "bfloat16"})
    assert "14.2 minutes on cpu, trained in bfloat16." in with_precision


def test_replace_between_markers_keeps_the_rest():
    text = f"intro\n{docs.START}\nold table\n{docs.END}\noutro"
    new = docs.replace_between_markers(text, "new table")
    assert new == f"intro\n{docs.START}\nnew table\n{docs.END}\noutro"
    with pytest.raises(ValueError, match="markers"):
        docs.replace_between_markers("no markers here", "x")


def test_the_readme_has_the_markers():
    text = docs.README.read_text(encoding="utf-8")
    assert text.index(docs.START) < text.index(docs.END)


def test_save_small_shrinks_a_figure(tmp_path):
    from PIL import Image

    Image.new("RGB", (1200, 900), (200, 100, 50)).save(tmp_path / "big.png")
    docs.save_small(tmp_path / "big.png", tmp_path / "small.png", width=600)
    with Image.open(tmp_path / "small.png") as small:
        assert small.size == (600, 450)


def test_make_docs_without_a_finished_demo_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    monkeypatch.setattr(docs, "DOCS", tmp_path / "docs")  # the repository's pictures stay as they are
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{docs.START}\nold\n{docs.END}\n")
    monkeypatch.setattr(docs, "README", readme)
    assert docs.main(["--demo", str(tmp_path / "no-demo")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: No finished demo in {tmp_path / 'no-demo'} (metrics.json is missing")
    assert err.count("\n") == 1 and "old" in readme.read_text()


def test_the_readmes_first_section_has_the_command_that_opens_the_notebooks():
    first = docs.README.read_text(encoding="utf-8").split("\n## ", 1)[0]
    assert re.search(r"^make lab\b", first, re.MULTILINE)
    requirements = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert "jupyterlab" not in requirements  # `make test` (CI) installs no JupyterLab
    lab = (REPO_ROOT / "requirements-lab.txt").read_text(encoding="utf-8").splitlines()
    assert "-r requirements.txt" in lab and any(line.startswith("jupyterlab") for line in lab)


@pytest.mark.skipif(shutil.which("make") is None or os.name == "nt", reason="needs make")
def test_make_lab_opens_the_notebooks_and_allows_root_only_as_root():
    """Jupyter refuses to run as root without --allow-root; nobody else should get the flag."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}  # make test
    dry = subprocess.run(["make", "-n", "--no-print-directory", "lab"], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, check=True)
    (command,) = [line for line in dry.stdout.splitlines() if "-m jupyterlab" in line]
    assert command.endswith(" notebooks")
    assert ("--allow-root" in command) == (os.geteuid() == 0)
