"""utils.run_record: a resumed run is the run it says (issue 22).

Every setting that shapes a run is recorded in its checkpoint; on --resume a setting left out is
the run's own, one given with another value is refused with the list or applied with a line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_run_args
from utils import run_record
from utils import train as tr

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def cli(data, out: Path, *more: str) -> list[str]:
    return tiny_run_args(data, out, "--sample-every", "0", *more)


def recorded(out: Path) -> dict:
    return torch.load(out / tr.CHECKPOINT, weights_only=True)["config"]


def test_every_run_shaping_setting_is_recorded(data, tmp_path):
    out = tmp_path / "run"
    assert tr.main(cli(data, out, "--iterations", "1", "--preset", "paper")) == 0
    saved = recorded(out)
    assert set(run_record.RUN_SHAPING) <= set(saved)
    paper = (saved["lr"], saved["pool_size"], saved["lambda_identity"], saved["decay_from"])
    assert paper == (2e-4, 50, 5.0, "half")
    assert saved["betas"] == [0.5, 0.999] and saved["disc_features"] == [8, 16, 32, 64]


def test_resume_alone_continues_with_the_runs_own_settings(data, tmp_path, capsys):
    """`--preset paper` at the start, plain `--resume` later: the pool, lr and decay stay the paper's."""
    out = tmp_path / "run"
    assert tr.main(cli(data, out, "--iterations", "1", "--preset", "paper")) == 0
    assert tr.main(cli(data, out, "--resume")) == 0  # nor --iterations: the run's own 1 ... is done
    assert tr.main(cli(data, out, "--resume", "--iterations", "2")) == 0
    saved = recorded(out)
    assert (saved["lr"], saved["pool_size"], saved["decay_from"]) == (2e-4, 50, "half")
    assert saved["iterations"] == 2
    assert len(torch.load(out / tr.CHECKPOINT, weights_only=True)["pools"][0]["pool_A"]["images"]) == 2
    assert "other settings" not in capsys.readouterr().err


@pytest.mark.parametrize("flags, listed", [
    (["--pool-size", "50"], "pool_size 0 -> 50 (the pool of earlier fakes is part of the run's state)"),
    (["--preset", "paper"], "pool_size 0 -> 50"),
    (["--image-size", "36"], "image_size 32 -> 36"),
    (["--seed", "3", "--batch-size", "2"], "batch_size 1 -> 2 (the run's place in the data counts"),
])
def test_a_setting_the_resume_cannot_honour_is_refused_with_the_list(data, tmp_path, capsys, flags, listed):
    out = tmp_path / "run"
    assert tr.main(cli(data, out, "--iterations", "1")) == 0
    before = (out / tr.CHECKPOINT).read_bytes()
    assert tr.main(cli(data, out, "--resume", "--iterations", "2", *flags)) == 2  # the last --image-size wins
    err = capsys.readouterr().err
    assert "was trained with other settings: " in err and listed in err and "--resume-anyway" in err
    assert err.count("\n") == 1 and (out / tr.CHECKPOINT).read_bytes() == before


def test_a_learning_rate_given_on_resume_is_applied_with_a_line(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert tr.main(cli(data, out, "--iterations", "1")) == 0
    assert tr.main(cli(data, out, "--resume", "--iterations", "2", "--lr", "3e-4")) == 0
    printed = capsys.readouterr().out
    assert "note: resuming with lr 1e-05 -> 0.0003, applied from the next iteration" in printed
    assert recorded(out)["lr"] == 3e-4
    config = tr.TrainConfig(domain_a=data[0], domain_b=data[1], out=out, image_size=32, num_features=8,
                            num_residuals=1, iterations=3, lr=3e-4, sample_every=0, resume=True)
    history = tr.train(config, progress=False).history
    assert history["lr"].tolist() == [1e-5, 3e-4, 3e-4]


def test_resume_anyway_applies_a_refused_setting_with_a_word(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert tr.main(cli(data, out, "--iterations", "1")) == 0
    assert tr.main(cli(data, out, "--resume-anyway", "--iterations", "3", "--pool-size", "5")) == 0
    assert "pool_size 0 -> 5" in capsys.readouterr().out
    state = torch.load(out / tr.CHECKPOINT, weights_only=True)
    assert state["config"]["pool_size"] == 5 and len(state["pools"][0]["pool_A"]["images"]) == 2


def test_a_checkpoint_of_an_earlier_version_says_what_it_did_not_record(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert tr.main(cli(data, out, "--iterations", "1")) == 0
    for name in (tr.CHECKPOINT,):
        state = torch.load(out / name, weights_only=True)
        state["config"] = {k: state["config"][k] for k in ("num_features", "num_residuals", "generator",
                                                           "disc_features", "image_size", "batch_size",
                                                           "seed", "random_pairing", "world_size")}
        torch.save(state, out / name)
    assert tr.main(cli(data, out, "--resume", "--iterations", "2")) == 0
    printed = capsys.readouterr().out
    assert "was written by an earlier version that did not record pool_size, lr, betas" in printed


def test_the_python_api_counts_every_setting_as_given(data, tmp_path):
    config = tr.TrainConfig(domain_a=data[0], domain_b=data[1], out=tmp_path, image_size=32, lr=1e-3)
    assert config.explicit is None
    same, lines = run_record.reconcile(config, run_record.record(config), 1, "ckpt")
    assert same == config and lines == []
    other = {**run_record.record(config), "lr": 1e-5}
    _, lines = run_record.reconcile(config, other, 1, "ckpt")
    assert lines == ["note: resuming with lr 1e-05 -> 0.001, applied from the next iteration: the optimisers "
                     "continue at this learning rate, their momentum kept."]
