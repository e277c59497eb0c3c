"""utils.train: exact resume, safe checkpoints, budgets, the paper's options, the CLI."""

from __future__ import annotations

import os
import random
import signal
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import write_images
from utils import train as tr
from utils.ch06util import Generator, make_transform
from utils.checkpoints import CheckpointError

NETS = ("gen_A", "gen_B", "disc_A", "disc_B")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "A", tmp_path / "B"
    write_images(a, 3, size=(36, 40), seed=1)
    write_images(b, 5, size=(36, 40), seed=2)
    return a, b


def tiny_settings(data, out: Path, **overrides) -> dict:
    """Small enough for a test: 32 px, Generator(3, 8, 1), Discriminator((8, 16, 32, 64))."""
    settings = dict(domain_a=data[0], domain_b=data[1], out=out, image_size=32, num_features=8,
                    num_residuals=1, sample_every=0, checkpoint_every=100, log_every=1)
    return {**settings, **overrides}


def tiny(data, out: Path, **overrides) -> tr.TrainConfig:
    return tr.TrainConfig(**tiny_settings(data, out, **overrides))


def run(data, out, **overrides) -> tr.TrainResult:
    return tr.train(tiny(data, out, **overrides), progress=False)


def assert_same(a, b, where="checkpoint"):
    """Recursive bitwise equality of tensors, dicts, lists and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{k}]")
    else:
        assert a == b, where


def load_checkpoint(out: Path, name: str = tr.CHECKPOINT) -> dict:
    return torch.load(out / name, weights_only=True)


# ------------------------------------------------------------------------ exact resume
OPTIONS = {
    "chapter": {},
    "paper-options": dict(lambda_identity=5.0, pool_size=2, random_pairing=True, decay_from=2, lr=2e-4),
}


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_resume_is_bitwise_identical_to_one_run(data, tmp_path, options):
    # Batch 2 over 5 items: 3 iterations per epoch, so the run crosses an epoch boundary and
    # the resume starts mid-epoch (after 2 of the 3 batches).
    draws: dict[str, list] = {"whole": [], "split": []}

    def session(out, **more):  # the callback stands for any code drawing from the global RNGs
        def draw(event):
            draws[out].append((torch.rand(()).item(), float(np.random.rand()), random.random()))

        config = tiny(data, tmp_path / out, batch_size=2, **options, **more)
        return tr.train(config, progress=False, callback=draw)

    whole = session("whole", iterations=5)
    session("split", iterations=2)
    torch.rand(3), np.random.rand(3), random.random()  # a notebook cell in between draws too
    resumed = session("split", iterations=5, resume=True)
    assert draws["split"] == draws["whole"]  # the global RNGs continue where they were

    assert (whole.reason, whole.iteration, whole.epoch) == ("iterations", 5, 1)
    assert (resumed.reason, resumed.iteration) == ("iterations", 5)
    for name in NETS:
        assert_same(getattr(whole, name).state_dict(), getattr(resumed, name).state_dict(), name)
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "split")
    for state in (a, b):
        state.pop("seconds")
    assert_same(a, b)  # networks, optimisers, scalers, pools, RNG states, data position

    history = pd.read_csv(tmp_path / "split" / tr.HISTORY)
    assert history["iteration"].tolist() == [1, 2, 3, 4, 5]
    losses = list(tr.LOSS_KEYS) + ["lr", "epoch"]
    pd.testing.assert_frame_equal(history[losses], pd.read_csv(tmp_path / "whole" / tr.HISTORY)[losses])
    pd.testing.assert_frame_equal(resumed.history[losses], history[losses], check_dtype=False)


def test_checkpoint_and_generators_load_with_plain_torch_load(data, tmp_path):
    result = run(data, tmp_path / "o", iterations=2, pool_size=1)
    state = load_checkpoint(tmp_path / "o")  # weights_only=True: tensors and plain values only
    assert state["iteration"] == 2 and state["epoch"] == 0 and state["position"] == 2
    assert {"opt_disc", "opt_gen", "d_scaler", "g_scaler", "pools", "rng", *NETS} <= state.keys()
    assert len(state["pools"][0]["pool_A"]["images"]) == 1
    for file, net in ((tr.GEN_BLACK, result.gen_A), (tr.GEN_BLOND, result.gen_B)):
        gen = Generator(3, num_features=8, num_residuals=1)
        gen.load_state_dict(torch.load(tmp_path / "o" / file), strict=True)  # the chapter's call
        assert_same(gen.state_dict(), net.state_dict(), file)


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    tr._seed_everything(3)
    random.gauss(0, 1), np.random.randn()  # leave cached Gaussians in both generators
    tr.atomic_save(tr._rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(2), np.random.rand(2), random.random(), random.gauss(0, 1))
    tr._set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(2), np.random.rand(2), random.random(), random.gauss(0, 1))
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2:] == again[2:]


# ------------------------------------------------------------------ checkpoint safety
def test_crash_while_saving_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    out = tmp_path / "o"
    run(data, out, iterations=2, checkpoint_every=2)
    real_save = torch.save

    def dying_save(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("simulated crash in the middle of a save")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="simulated crash"):
        run(data, out, iterations=4, checkpoint_every=3, resume=True)
    monkeypatch.setattr(torch, "save", real_save)

    assert not (out / tr.CHECKPOINT).exists()  # the new one never appeared ...
    assert load_checkpoint(out, tr.PREVIOUS_CHECKPOINT)["iteration"] == 2  # ... the old one is whole
    assert not list(out.glob("*.tmp"))
    resumed = run(data, out, iterations=4, resume=True)
    whole = run(data, tmp_path / "whole", iterations=4)
    for name in NETS:
        assert_same(getattr(whole, name).state_dict(), getattr(resumed, name).state_dict(), name)
    assert pd.read_csv(out / tr.HISTORY)["iteration"].tolist() == [1, 2, 3, 4]


def test_damaged_newest_checkpoint_falls_back_to_the_previous(data, tmp_path, capsys):
    out = tmp_path / "o"
    run(data, out, iterations=2, checkpoint_every=1)
    newest = out / tr.CHECKPOINT
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.warns(UserWarning, match=r"checkpoint\.pt cannot be loaded.*checkpoint\.damaged\.pt"):
        result = run(data, out, iterations=3, resume=True)
    assert f"Resuming from {out / tr.PREVIOUS_CHECKPOINT} at iteration 1" in capsys.readouterr().out
    assert result.iteration == 3 and (out / "checkpoint.damaged.pt").is_file()
    assert pd.read_csv(out / tr.HISTORY)["iteration"].tolist() == [1, 2, 3]


def test_no_loadable_checkpoint_is_a_clear_error(data, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / tr.CHECKPOINT).write_bytes(b"not a checkpoint")
    (out / tr.PREVIOUS_CHECKPOINT).write_bytes(b"nor this")
    with pytest.raises(CheckpointError, match=r"No checkpoint in .* can be loaded"):
        run(data, out, iterations=1, resume=True)


def test_checkpoint_of_another_model_size_is_a_clear_error(data, tmp_path):
    run(data, tmp_path / "o", iterations=1)
    with pytest.raises(CheckpointError, match=r"does not fit Generator.*num_features"):
        run(data, tmp_path / "o", iterations=2, resume=True, num_features=4)


# extra code – beyond the chapter: a generator variant trains, is recorded, and loads back as itself
def test_a_generator_variant_is_recorded_and_loads_back_as_itself(data, tmp_path):
    from utils.checkpoints import load_generator

    result = run(data, tmp_path / "o", iterations=1, generator="no_first_norm")
    assert load_checkpoint(tmp_path / "o")["config"]["generator"] == "no_first_norm"
    gen = load_generator(result.paths["gen_black"])
    assert gen.variant == "no_first_norm" and isinstance(gen.initial[1], torch.nn.Identity)
    with pytest.raises(CheckpointError, match="unexpected keys"):  # resumed as the chapter's: refused
        run(data, tmp_path / "o", iterations=2, resume=True)
    with pytest.raises(ValueError, match="no_first_norm"):
        tiny(data, tmp_path / "p", generator="sepia")


def test_a_fresh_run_never_overwrites_an_existing_checkpoint(data, tmp_path):
    run(data, tmp_path / "o", iterations=1)
    with pytest.raises(FileExistsError, match="--resume"):
        run(data, tmp_path / "o", iterations=1)


# ----------------------------------------------------------------------------- budgets
def test_epoch_budget_and_whichever_comes_first(data, tmp_path):
    result = run(data, tmp_path / "e", epochs=1, batch_size=2)  # 5 items -> 3 batches
    assert (result.reason, result.iteration, result.epoch) == ("epochs", 3, 1)
    assert result.history["epoch"].tolist() == [0, 0, 0]
    result = run(data, tmp_path / "i", epochs=1, iterations=2)
    assert (result.reason, result.iteration) == ("iterations", 2)


def test_minutes_budget_uses_the_clock(data, tmp_path):
    now = [1000.0]

    def tick(event: tr.TrainEvent) -> None:  # each logged iteration "takes" 30 s
        now[0] += 30

    result = tr.train(tiny(data, tmp_path / "o", minutes=1), progress=False, callback=tick,
                      clock=lambda: now[0])
    assert (result.reason, result.iteration) == ("minutes", 3)
    assert result.history["seconds"].tolist() == [0.0, 30.0, 60.0]
    assert load_checkpoint(tmp_path / "o")["iteration"] == 3


def test_callback_can_stop_and_sees_sample_grids(data, tmp_path):
    events = []
    result = tr.train(tiny(data, tmp_path / "o", iterations=10, sample_every=2, log_every=5),
                      progress=False, callback=lambda e: events.append(e) or e.iteration >= 4)
    assert (result.reason, result.iteration) == ("callback", 4)
    assert [e.iteration for e in events] == [2, 4]
    grid = events[0].grid
    assert grid.shape == (3, 2 + 2 * (32 + 2), 2 + 3 * (32 + 2)) and 0 <= grid.min() <= grid.max() <= 1
    assert sorted(p.name for p in (tmp_path / "o" / tr.SAMPLES).iterdir()) == ["00000002.png",
                                                                              "00000004.png"]


def test_keyboard_interrupt_between_iterations_saves_and_returns(data, tmp_path):
    def interrupt(event):
        if event.iteration == 2:
            raise KeyboardInterrupt

    result = tr.train(tiny(data, tmp_path / "o", iterations=5), progress=False, callback=interrupt)
    assert (result.reason, result.iteration) == ("interrupted", 2)
    assert load_checkpoint(tmp_path / "o")["iteration"] == 2


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to oneself is POSIX")
def test_ctrl_c_finishes_the_iteration_then_saves(data, tmp_path):
    def ctrl_c(event):
        if event.iteration == 2:
            os.kill(os.getpid(), signal.SIGINT)

    result = tr.train(tiny(data, tmp_path / "o", iterations=5), progress=False, callback=ctrl_c)
    assert (result.reason, result.iteration) == ("interrupted", 2)
    assert load_checkpoint(tmp_path / "o")["iteration"] == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


# ----------------------------------------------------------------------------- options
def test_identity_loss_is_logged_only_when_enabled(data, tmp_path):
    off = run(data, tmp_path / "off", iterations=2).history["identity_loss"]
    on = run(data, tmp_path / "on", iterations=2, lambda_identity=5.0).history["identity_loss"]
    assert (off == 0).all() and (on > 0).all()


def test_image_pool_returns_older_images_half_the_time():
    assert tr.ImagePool(0).query(x := torch.randn(2, 3, 4, 4)) is x
    pool = tr.ImagePool(3, seed=0)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling up: every image comes back as is
    older = 0
    for step in range(100):
        new = torch.full((1, 1, 1, 1), 100.0 + step)
        older += int(pool.query(new).item() < 100 + step)
    assert 30 < older < 70  # p = 0.5
    copy = tr.ImagePool(3)
    copy.load_state_dict(pool.state_dict())
    probe = torch.full((4, 1, 1, 1), -1.0)
    assert torch.equal(copy.query(probe.clone()), pool.query(probe.clone()))


def test_learning_rate_decays_linearly_to_about_zero(data, tmp_path):
    lrs = [tr.learning_rate(1.0, i, total=1000, decay_from=500) for i in range(1000)]
    assert lrs[:501] == [1.0] * 501 and lrs[-1] == pytest.approx(1 / 500)
    assert np.allclose(np.diff(lrs[500:]), -1 / 500)
    assert tr.learning_rate(1.0, 999, total=1000, decay_from=None) == 1.0
    paper = tr.TrainConfig.from_preset("paper", **tiny_settings(data, tmp_path / "o", iterations=4))
    history = tr.train(paper, progress=False).history  # decay over the second half: from 2 of 4
    assert history["lr"].tolist() == pytest.approx([2e-4, 2e-4, 2e-4, 1e-4])


def test_decay_needs_a_known_length(data, tmp_path):
    with pytest.raises(ValueError, match="needs a known length"):
        run(data, tmp_path / "o", minutes=1, decay_from="half")


def test_sampler_pairing_is_reproducible_and_shards_by_rank():
    modulo = tr.ResumableSampler(3, 5, seed=0).epoch_items(0)
    assert sorted(modulo[:, 1].tolist()) == [0, 1, 2, 3, 4]  # the chapter: B[i % 5] for i in 0..4
    assert (modulo[:, 0] == modulo[:, 1] % 3).all()  # ... with A[i % 3]
    rand = tr.ResumableSampler(3, 5, seed=0, random_pairing=True)
    items = [rand.epoch_items(e) for e in range(4)]
    assert any((e[:, 1] != modulo[:, 1]).any() for e in items)  # random B changes the pairs ...
    assert_same(torch.from_numpy(items[2]), torch.from_numpy(  # ... reproducibly
        tr.ResumableSampler(3, 5, seed=0, random_pairing=True).epoch_items(2)))
    assert not np.array_equal(items[0], items[1])  # a new order each epoch

    rand.set_epoch(1, start=2)
    assert list(rand) == [tuple(row) for row in items[1][2:].tolist()] and len(rand) == 3
    shards = [tr.ResumableSampler(3, 5, seed=0, rank=r, world_size=2).epoch_items(0) for r in (0, 1)]
    assert [len(s) for s in shards] == [3, 3]
    assert set(map(tuple, np.concatenate(shards).tolist())) == set(map(tuple, modulo.tolist()))


def test_augmentation_is_a_function_of_the_item(data):
    pairs = tr.SeededPairs(data[0], data[1], make_transform(32))
    a1, b1 = pairs[(0, 1, 7)]
    a2, b2 = pairs[(0, 1, 7)]
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    flipped = {bool(torch.equal(pairs[(0, 1, s)][0], a1.flip(-1))) for s in range(20)}
    assert flipped == {True, False}  # the seed decides the flip


def test_presets_and_explicit_flags(data, tmp_path):
    paper = tr.TrainConfig.from_preset("paper", domain_a=data[0], domain_b=data[1], out=tmp_path)
    assert (paper.lr, paper.lambda_identity, paper.pool_size, paper.decay_from) == (2e-4, 5.0, 50, "half")
    chapter = tr.TrainConfig(domain_a=data[0], domain_b=data[1], out=tmp_path)
    assert (chapter.lr, chapter.betas, chapter.lambda_cycle, chapter.lambda_identity, chapter.pool_size,
            chapter.decay_from, chapter.random_pairing, chapter.image_size, chapter.batch_size,
            chapter.discriminator_features()) == (1e-5, (0.5, 0.999), 10.0, 0.0, 0, None, False, 256, 1,
                                                  (64, 128, 256, 512))
    args = tr.build_parser().parse_args(["--domain-a", "a", "--domain-b", "b", "--out", "o",
                                         "--preset", "paper", "--pool-size", "0", "--decay-from", "7"])
    config = tr.config_from_args(args)
    assert (config.lr, config.pool_size, config.decay_from, config.random_pairing) == (2e-4, 0, 7, False)
    with pytest.raises(ValueError, match="preset"):
        tr.TrainConfig.from_preset("fast", domain_a="a", domain_b="b", out="o")


# --------------------------------------------------------------------------- CLI, plots
def test_cli_end_to_end(data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--domain-a", str(data[0]), "--domain-b", str(data[1]), "--out", str(out), "--image-size",
            "32", "--num-features", "8", "--num-residuals", "1", "--sample-every", "1", "--quiet"]
    assert tr.main([*argv, "--iterations", "1", "--resume"]) == 0
    assert "starting fresh" in capsys.readouterr().out
    assert tr.main([*argv, "--iterations", "2"]) == 2  # no silent overwrite
    assert "--resume" in capsys.readouterr().err
    assert tr.main([*argv, "--iterations", "2", "--resume"]) == 0
    assert "Resuming from" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} >= {tr.CHECKPOINT, tr.PREVIOUS_CHECKPOINT, tr.GEN_BLACK,
                                               tr.GEN_BLOND, tr.HISTORY, tr.SAMPLES}
    assert pd.read_csv(out / tr.HISTORY).columns.tolist() == list(tr.HISTORY_COLUMNS)
    assert len(list((out / tr.SAMPLES).glob("*.png"))) == 2


def test_plot_history_draws_the_losses(data, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    history = run(data, tmp_path / "o", iterations=2, lambda_identity=1.0).history
    from utils.show import plot_history

    ax = plot_history(history, window=2)
    assert [line.get_label() for line in ax.get_lines()] == list(tr.LOSS_KEYS)
