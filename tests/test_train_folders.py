"""utils.train and its run folder (issue 22): it writes only what it owns, one run per folder (two
real processes), stale temporaries, SIGTERM, history.csv re-saved by a spreadsheet, checkpoints
that cannot be resumed, and the one-line answers to an --out or a domain that cannot be used."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import tiny_run_args, write_images
from utils import run_state
from utils import train as tr
from utils.ch06util import LOSS_KEYS, Generator
from utils.ownership import RECORD, NotOursError, OwnedFiles

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def argv(data, out: Path, *more: str) -> list[str]:
    return tiny_run_args(data, out, "--sample-every", "1", *more)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_pair(folder: Path, seed: int = 7) -> None:
    """A generator pair that no run in `folder` made: the book's from `make weights`, say."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    for name in (tr.GEN_BLACK, tr.GEN_BLOND):
        torch.save(Generator(3, 8, 1).state_dict(), folder / name)


# ------------------------------------------------------------------- write only what it owns
def test_a_fresh_run_never_replaces_a_pair_it_did_not_write(data, tmp_path, capsys):
    out = tmp_path / "files"
    write_pair(out)
    before = snapshot(out)
    assert tr.main(argv(data, out, "--iterations", "1")) == 2
    err = capsys.readouterr().err
    assert "gen_black.pth, gen_blond.pth, which this run did not write" in err and "make weights" in err
    assert "--force" in err and err.count("\n") == 1
    assert snapshot(out) == before and sorted(os.listdir(out)) == [tr.GEN_BLACK, tr.GEN_BLOND]
    assert tr.main(argv(data, out, "--iterations", "1", "--force")) == 0
    assert snapshot(out)[tr.GEN_BLACK] != before[tr.GEN_BLACK]


def test_the_notebooks_resume_true_does_not_replace_the_books_pair_either(data, tmp_path):
    out = tmp_path / "files"
    write_pair(out)
    before = snapshot(out)
    config = tr.TrainConfig(domain_a=data[0], domain_b=data[1], out=out, image_size=32, num_features=8,
                            num_residuals=1, iterations=1, resume=True)  # no checkpoint: starts fresh
    with pytest.raises(NotOursError):
        tr.train(config, progress=False)
    assert snapshot(out) == before


def test_a_resume_never_replaces_a_pair_fetched_over_the_run(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert tr.main(argv(data, out, "--iterations", "1")) == 0
    write_pair(out)  # `make weights --force` into the run's folder
    before = snapshot(out)
    assert tr.main(argv(data, out, "--iterations", "2", "--resume")) == 2
    assert "which this run did not write (generators that no checkpoint in this folder holds" in \
        capsys.readouterr().err
    assert snapshot(out) == before


def test_a_run_folder_of_an_older_version_resumes_its_pair_is_recognised(data, tmp_path):
    out = tmp_path / "run"
    assert tr.main(argv(data, out, "--iterations", "1")) == 0
    (out / RECORD).unlink()  # written before runs marked their files
    assert tr.main(argv(data, out, "--iterations", "2", "--resume")) == 0
    assert OwnedFiles.load(out).owner(tr.GEN_BLACK) == "utils.train"


def test_a_fresh_run_refuses_a_readers_history_and_samples_but_replaces_its_own(data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / tr.HISTORY).write_text("my own notes\n")
    assert tr.main(argv(data, out, "--iterations", "1")) == 2
    assert "history.csv, which this run did not write" in capsys.readouterr().err
    assert (out / tr.HISTORY).read_text() == "my own notes\n"
    (out / tr.HISTORY).unlink()
    (out / tr.SAMPLES).mkdir()
    (out / tr.SAMPLES / "00000001.png").write_bytes(b"my picture")
    assert tr.main(argv(data, out, "--iterations", "1")) == 2
    assert "samples/00000001.png" in capsys.readouterr().err
    (out / tr.SAMPLES / "00000001.png").unlink()
    # a session killed before its first checkpoint leaves a history of its own: a fresh start replaces it
    killed = run_state.History(out / tr.HISTORY, keep_through=None, write=True)
    killed.append(pd.DataFrame([[1, 0, *[0.5] * len(LOSS_KEYS), 1e-5, 1.0]],
                               columns=list(run_state.HISTORY_COLUMNS)))
    assert tr.main(argv(data, out, "--iterations", "1")) == 0
    assert pd.read_csv(out / tr.HISTORY)["iteration"].tolist() == [1]


# ------------------------------------------------------------------ one run per folder
SLOW_RUN = """
import sys, time
from pathlib import Path
from utils import train as tr
a, b, out, go = sys.argv[1:5]
def wait(event):
    if event.iteration == 1:
        print("training", flush=True)
        while not Path(go).exists():
            time.sleep(0.05)
config = tr.TrainConfig(domain_a=a, domain_b=b, out=out, image_size=32, num_features=8, num_residuals=1,
                        iterations=3, sample_every=0, log_every=1)
print(tr.train(config, progress=False, callback=wait).iteration, flush=True)
"""


def test_a_second_run_into_the_same_folder_stops_at_once_naming_the_first(data, tmp_path, capsys):
    out, go = tmp_path / "run", tmp_path / "go"
    first = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(data[0]), str(data[1]), str(out), str(go)],
                             cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        # the run prints its precision first; "training" says it holds the folder (EOF: it failed)
        assert "training" in (line.strip() for line in iter(first.stdout.readline, "")), first.stderr.read()
        assert tr.main(argv(data, out, "--iterations", "3", "--resume")) == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by process {first.pid} (python -c" in err and "another --out folder" in err
    finally:
        go.touch()
        stdout, _ = first.communicate(timeout=300)
    assert first.returncode == 0 and stdout.strip() == "3"
    assert pd.read_csv(out / tr.HISTORY)["iteration"].tolist() == [1, 2, 3]  # each iteration once


def test_temporaries_a_killed_save_left_are_removed_at_start(data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    leftover = out / f".{tr.CHECKPOINT}.k2j4x.tmp"
    leftover.write_bytes(bytes(3 * 2**20))
    other = out / ".my-notes.tmp"  # not a name a run writes: left alone
    other.write_text("x")
    assert tr.main(argv(data, out, "--iterations", "1")) == 0
    assert "Removed 1 unfinished file(s) (3.0 MB)" in capsys.readouterr().out
    assert not leftover.exists() and other.exists()


# --------------------------------------------------------------------------------- SIGTERM
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM to oneself is POSIX")
def test_sigterm_finishes_the_iteration_then_saves(data, tmp_path):
    def term(event):
        if event.iteration == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    config = tr.TrainConfig(domain_a=data[0], domain_b=data[1], out=tmp_path / "o", image_size=32,
                            num_features=8, num_residuals=1, iterations=5, sample_every=0, log_every=1)
    result = tr.train(config, progress=False, callback=term)
    assert (result.reason, result.iteration) == ("terminated", 2)
    assert torch.load(tmp_path / "o" / tr.CHECKPOINT, weights_only=True)["iteration"] == 2


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_the_command_killed_with_sigterm_saves_says_so_and_exits_143(data, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "utils.train", *argv(data, out, "--iterations", "100000",
                                                                        "--sample-every", "0")],
                            cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        history = out / tr.HISTORY
        if history.is_file() and len(history.read_text().splitlines()) > 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 143, stderr
    assert "Termination signal (SIGTERM) received" in stderr and "Traceback" not in stderr
    assert torch.load(out / tr.CHECKPOINT, weights_only=True)["iteration"] >= 2


# ------------------------------------------------------------------------------ history.csv
def test_a_history_resaved_by_a_spreadsheet_is_read_and_written_back(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert tr.main(argv(data, out, "--iterations", "2")) == 0
    history = pd.read_csv(out / tr.HISTORY)
    history.to_csv(out / tr.HISTORY, sep=";", decimal=",", index=False)  # a European spreadsheet
    assert tr.main(argv(data, out, "--iterations", "3", "--resume")) == 0
    assert "had been saved with semicolons" in capsys.readouterr().out
    again = pd.read_csv(out / tr.HISTORY)
    assert again["iteration"].tolist() == [1, 2, 3]
    pd.testing.assert_series_equal(again["G_loss"][:2], history["G_loss"], check_exact=False)


def test_a_history_that_is_not_one_is_one_line_and_nothing_is_lost(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert tr.main(argv(data, out, "--iterations", "1")) == 0
    (out / tr.HISTORY).write_text("name,age\nann,3\n")
    before = snapshot(out)
    assert tr.main(argv(data, out, "--iterations", "2", "--resume")) == 2
    err = capsys.readouterr().err
    assert "history.csv lacks the column(s) iteration" in err and "Move it aside" in err
    assert err.count("\n") == 1 and snapshot(out) == before


# ------------------------------------------------------------------ checkpoints that cannot be resumed
def _edit_checkpoint(out: Path, change) -> None:
    for name in (tr.CHECKPOINT, tr.PREVIOUS_CHECKPOINT):
        if (out / name).is_file():
            state = torch.load(out / name, weights_only=True)
            change(state)
            torch.save(state, out / name)


def test_a_checkpoint_without_an_entry_says_which(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert tr.main(argv(data, out, "--iterations", "1")) == 0
    _edit_checkpoint(out, lambda state: state.pop("pools"))
    assert tr.main(argv(data, out, "--iterations", "2", "--resume")) == 2
    err = capsys.readouterr().err
    assert "cannot be resumed: it lacks 'pools'" in err and "KeyError" not in err


def test_a_checkpoint_of_a_newer_version_says_so_and_is_not_called_damaged(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert tr.main(argv(data, out, "--iterations", "1", "--checkpoint-every", "1")) == 0
    assert tr.main(argv(data, out, "--iterations", "2", "--checkpoint-every", "1", "--resume")) == 0
    _edit_checkpoint(out, lambda state: state.update(format=99))
    before = snapshot(out)
    assert tr.main(argv(data, out, "--iterations", "3", "--resume")) == 2
    err = capsys.readouterr().err
    assert "written by a newer version of this code (checkpoint format 99" in err and "git pull" in err
    assert snapshot(out) == before  # nothing renamed to checkpoint.damaged.pt


# ---------------------------------------------------------------- folders that cannot be used
def test_the_same_folder_for_both_domains_is_refused(data, tmp_path, capsys):
    out = tmp_path / "run"
    line = ["--domain-a", str(data[0]), "--domain-b", str(data[0] / ".." / data[0].name), "--out", str(out)]
    assert tr.main([*line, "--quiet"]) == 2
    assert "--domain-a and --domain-b (domain_a, domain_b) both name" in capsys.readouterr().err
    copy = tmp_path / "copy_of_A"
    write_images(copy, 3, size=(36, 40), seed=1)  # the same names: a copy of A given as B
    assert tr.main(["--domain-a", str(data[0]), "--domain-b", str(copy), "--out", str(out), "--quiet"]) == 2
    assert "hold the same 3 images (a copy of one folder?)" in capsys.readouterr().err
    assert not out.exists()


def test_an_out_that_is_a_file_and_a_domain_that_is_a_picture_are_one_line(data, tmp_path, capsys):
    afile = tmp_path / "run.txt"
    afile.write_text("notes")
    assert tr.main(argv(data, afile, "--iterations", "1")) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "run.txt is a file, not a folder" in err and "Errno" not in err
    picture = data[0] / "000001.png"
    line = ["--domain-a", str(picture), "--domain-b", str(data[1]), "--out", str(tmp_path / "o"), "--quiet"]
    assert tr.main(line) == 2
    err = capsys.readouterr().err
    assert "000001.png is a file, not a folder of images" in err and "does not exist" not in err
    assert not (tmp_path / "o").exists() and afile.read_text() == "notes"
