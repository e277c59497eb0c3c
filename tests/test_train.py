"""utils.train: exact resume, safe checkpoints, budgets, the paper's options, the CLI."""

from __future__ import annotations

import itertools
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
from utils import run_state
from utils import train as tr
from utils.ch06util import LOSS_KEYS, Generator, make_transform
from utils.checkpoints import CheckpointError, atomic_save
from utils.train_data import resolve_decay

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
    losses = list(LOSS_KEYS) + ["lr", "epoch"]
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
    run_state.seed_everything(3)
    random.gauss(0, 1), np.random.randn()  # leave cached Gaussians in both generators
    atomic_save(run_state.rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(2), np.random.rand(2), random.random(), random.gauss(0, 1))
    run_state.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
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
    with pytest.raises(tr.ResumeMismatchError, match=r"other settings: num_features 8 -> 4 .*width"):
        run(data, tmp_path / "o", iterations=2, resume=True, num_features=4)
    with pytest.raises(tr.ResumeMismatchError, match=r"num_features") as caught:  # never, even anyway
        run(data, tmp_path / "o", iterations=2, resume=True, resume_anyway=True, num_features=4)
    assert "--resume-anyway" not in str(caught.value)


# extra code – beyond the chapter: a generator variant trains, is recorded, and loads back as itself
def test_a_generator_variant_is_recorded_and_loads_back_as_itself(data, tmp_path):
    from utils.checkpoints import load_generator

    result = run(data, tmp_path / "o", iterations=1, generator="no_first_norm")
    assert load_checkpoint(tmp_path / "o")["config"]["generator"] == "no_first_norm"
    gen = load_generator(result.paths["gen_black"])
    assert gen.variant == "no_first_norm" and isinstance(gen.initial[1], torch.nn.Identity)
    with pytest.raises(tr.ResumeMismatchError, match="generator 'no_first_norm' -> 'chapter'"):
        run(data, tmp_path / "o", iterations=2, resume=True)  # resumed as the chapter's: refused
    with pytest.raises(ValueError, match="no_first_norm"):
        tiny(data, tmp_path / "p", generator="sepia")


def test_a_mask_variant_trains_with_its_mask_penalty_and_loads_back_as_itself(data, tmp_path):
    from utils.checkpoints import load_generator
    from utils.cli import SettingError

    result = run(data, tmp_path / "o", iterations=1, generator="mask", lambda_mask=0.5, lambda_mask_tv=0.5)
    assert load_checkpoint(tmp_path / "o")["config"]["generator"] == "mask"
    gen = load_generator(result.paths["gen_blond"])
    assert gen.variant == "mask" and gen.has_mask
    with pytest.raises(SettingError, match="has none"):  # a mask penalty without a mask: refused
        tiny(data, tmp_path / "p", generator="no_first_norm", lambda_mask=0.1)


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

    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a background job
    result = tr.train(tiny(data, tmp_path / "o", iterations=5), progress=False, callback=ctrl_c)
    assert (result.reason, result.iteration) == ("interrupted", 2)
    assert load_checkpoint(tmp_path / "o")["iteration"] == 2
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler restored


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
    assert pd.read_csv(out / tr.HISTORY).columns.tolist() == list(run_state.HISTORY_COLUMNS)
    assert len(list((out / tr.SAMPLES).glob("*.png"))) == 2


def test_plot_history_draws_the_losses(data, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    history = run(data, tmp_path / "o", iterations=2, lambda_identity=1.0).history
    from utils.show import plot_history

    ax = plot_history(history, window=2)
    assert [line.get_label() for line in ax.get_lines()] == list(LOSS_KEYS)


# ------------------------------------------------------------ settings checked in one place
@pytest.mark.parametrize("field, value, allowed", [
    ("num_residuals", -1, "at least 1"),
    ("num_residuals", 0, "at least 1"),
    ("iterations", 0, "at least 1"),
    ("minutes", -5, "above 0"),
    ("batch_size", 0, "at least 1"),
    ("image_size", 30, "multiple of 4"),
    ("image_size", 20, "at least 24"),
    ("lr", 0.0, "above 0"),
    ("lambda_identity", -1.0, "at least 0"),
    ("pool_size", -3, "at least 0"),
    ("decay_from", 1.5, "share of the run"),
    ("seed", -1, "at least 0"),
])
def test_nonsense_settings_are_refused_with_the_allowed_range(data, tmp_path, field, value, allowed):
    from utils.cli import SettingError

    with pytest.raises(SettingError, match=allowed) as caught:
        tiny(data, tmp_path / "o", **{field: value})
    assert f"--{field.replace('_', '-')}" in str(caught.value) and repr(value) in str(caught.value)
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_cli_setting_error_is_one_line_exit_2(data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    argv = ["--domain-a", str(data[0]), "--domain-b", str(data[1]), "--out", str(tmp_path / "o"), "--quiet"]
    assert tr.main([*argv, "--num-residuals", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: num_residuals (--num-residuals) must be") and err.count("\n") == 1
    assert tr.main([*argv, "--image-size", "30"]) == 2
    assert "multiple of 4" in capsys.readouterr().err


def test_share_decay_and_the_demo_preset(data, tmp_path):
    from utils.settings import DEMO

    history = run(data, tmp_path / "o", iterations=4, lr=1.0, decay_from=0.5).history
    assert history["lr"].tolist() == pytest.approx([1.0, 1.0, 1.0, 0.5])  # = decay_from=2 of 4
    demo = tr.TrainConfig.from_preset("demo", domain_a="a", domain_b="b", out="o", iterations=100)
    assert (demo.image_size, demo.num_residuals, demo.lambda_identity) == (
        DEMO.image_size, DEMO.num_residuals, DEMO.lambda_identity)
    assert resolve_decay(demo, 100) == 60  # the demo's "last 40%" follows a changed length


# ------------------------------------------------------------- resume checks the data
def test_resume_on_swapped_or_other_folders_is_refused(data, tmp_path):
    out = tmp_path / "o"
    run(data, out, iterations=1)
    before = (out / tr.CHECKPOINT).read_bytes(), (out / tr.HISTORY).read_text()
    with pytest.raises(tr.ResumeMismatchError, match=r"A and B swapped.*--resume-anyway"):
        tr.train(tiny((data[1], data[0]), out, iterations=2, resume=True), progress=False)
    other = tmp_path / "C"
    write_images(other, 4, size=(36, 40), seed=9, start=50)
    with pytest.raises(tr.ResumeMismatchError, match="other images"):
        tr.train(tiny((other, data[1]), out, iterations=2, resume=True), progress=False)
    assert ((out / tr.CHECKPOINT).read_bytes(), (out / tr.HISTORY).read_text()) == before  # untouched

    with pytest.warns(UserWarning, match="swapped"):
        result = tr.train(tiny((data[1], data[0]), out, iterations=2, resume=True, resume_anyway=True),
                          progress=False)
    assert result.iteration == 2


def test_resume_with_images_added_warns_and_a_moved_folder_is_the_same_run(data, tmp_path):
    out = tmp_path / "o"
    run(data, out, iterations=1)
    moved = tmp_path / "moved_A"
    data[0].rename(moved)  # same file names elsewhere (a Drive mounted at another path): no complaint
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tr.train(tiny((moved, data[1]), out, iterations=2, resume=True), progress=False).iteration == 2
    write_images(moved, 1, size=(36, 40), seed=5, start=4)
    with pytest.warns(UserWarning, match="has 4 images now and had 3"):
        tr.train(tiny((moved, data[1]), out, iterations=3, resume=True), progress=False)


def test_cli_resume_anyway(data, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["--out", str(out), "--image-size", "32", "--num-features", "8", "--num-residuals", "1", "--quiet"]
    assert tr.main(["--domain-a", str(data[0]), "--domain-b", str(data[1]), *base, "--iterations", "1"]) == 0
    swapped = ["--domain-a", str(data[1]), "--domain-b", str(data[0]), *base, "--iterations", "2"]
    assert tr.main([*swapped, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "swapped" in err and "--resume-anyway" in err
    assert err.count("\n") == 1
    with pytest.warns(UserWarning, match="swapped"):
        assert tr.main([*swapped, "--resume-anyway"]) == 0  # implies --resume
    assert load_checkpoint(out)["iteration"] == 2


# ------------------------------------------------------------------------- precision
def fake_cpu(monkeypatch, native: bool) -> None:
    """A CPU with (AMX + AVX512-BF16) or without (AVX2 only) the bfloat16 instructions."""
    monkeypatch.delenv("CH06_CPU_AMP", raising=False)
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: native, raising=False)


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_a_run_prints_and_records_the_precision_it_trains_in(data, tmp_path, monkeypatch, capsys,
                                                              native, expected):
    fake_cpu(monkeypatch, native)
    result = run(data, tmp_path / "o", iterations=1)
    assert (result.precision, load_checkpoint(tmp_path / "o")["precision"]) == (expected, expected)
    out = capsys.readouterr().out
    assert f"Precision: {expected}: " in out and result.precision_reason in out
    assert ("natively" if native else "emulated") in result.precision_reason


def test_no_mixed_precision_trains_in_float32_and_says_so(data, tmp_path, monkeypatch, capsys):
    fake_cpu(monkeypatch, native=True)
    out = tmp_path / "run"
    assert tr.main(["--domain-a", str(data[0]), "--domain-b", str(data[1]), "--out", str(out), "--image-size",
                    "32", "--num-features", "8", "--num-residuals", "1", "--iterations", "1", "--quiet",
                    "--no-mixed-precision"]) == 0
    assert load_checkpoint(out)["precision"] == "float32"
    assert "Precision: float32: mixed precision turned off" in capsys.readouterr().out


def test_float32_and_bfloat16_runs_differ_only_by_rounding(data, tmp_path, monkeypatch):
    fake_cpu(monkeypatch, native=True)
    mixed = run(data, tmp_path / "bf16", iterations=1).history
    plain = run(data, tmp_path / "fp32", iterations=1, mixed_precision=False).history
    losses = ["D_loss", "G_loss", "cycle_loss"]  # the first iteration: same weights, same batch
    assert not mixed[losses].equals(plain[losses])  # bfloat16 did compute something
    np.testing.assert_allclose(mixed[losses].to_numpy(), plain[losses].to_numpy(), rtol=0.03)


def test_a_resume_in_the_same_precision_says_nothing_more(data, tmp_path, monkeypatch, capsys):
    fake_cpu(monkeypatch, native=True)
    run(data, tmp_path / "o", iterations=1)
    capsys.readouterr()
    run(data, tmp_path / "o", iterations=2, resume=True)
    out = capsys.readouterr().out
    assert "Precision: bfloat16" in out and "until now" not in out


def test_a_resume_in_another_precision_says_so_and_records_the_new_one(data, tmp_path, monkeypatch, capsys):
    fake_cpu(monkeypatch, native=True)
    run(data, tmp_path / "o", iterations=1)
    capsys.readouterr()
    resumed = run(data, tmp_path / "o", iterations=2, resume=True, mixed_precision=False)
    out = capsys.readouterr().out
    assert ("This run trained in bfloat16 until now and continues in float32 (mixed precision turned off)"
            in out)
    assert resumed.precision == load_checkpoint(tmp_path / "o")["precision"] == "float32"
    assert resumed.iteration == 2


def test_a_checkpoint_from_before_the_precision_record_resumes_and_says_so(data, tmp_path, monkeypatch,
                                                                            capsys):
    fake_cpu(monkeypatch, native=False)
    run(data, tmp_path / "o", iterations=1)
    state = load_checkpoint(tmp_path / "o")
    del state["precision"]  # as an older version wrote it
    atomic_save(state, tmp_path / "o" / tr.CHECKPOINT)
    capsys.readouterr()
    assert run(data, tmp_path / "o", iterations=2, resume=True).iteration == 2
    assert "does not record its precision" in capsys.readouterr().out


# --------------------------------------------------------- damaged data, disk, folders
def test_a_damaged_image_met_mid_run_is_skipped_and_named(data, tmp_path, capsys):
    bad = sorted(data[1].iterdir())[2]
    bad.write_bytes(b"this is not a PNG any more")  # e.g. a sync tool's half copy
    result = tr.train(tiny(data, tmp_path / "o", iterations=6, batch_size=2), progress=False)
    assert (result.reason, result.iteration) == ("iterations", 6)  # the run was not lost
    assert list(result.skipped_images) == [str(bad)] and result.skipped_images[str(bad)] >= 1
    err = capsys.readouterr().err
    assert err.count(f"warning: skipped {bad}") == 1  # warned once, however often it was met
    assert f"unreadable image(s) were skipped: {bad}" in err
    assert load_checkpoint(tmp_path / "o")["iteration"] == 6


def test_an_empty_domain_folder_is_one_line(data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["--domain-a", str(empty), "--domain-b", str(data[1]), "--out", str(tmp_path / "o"), "--quiet"]
    assert tr.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Domain A has no images in") and err.count("\n") == 1


def test_an_unwritable_out_is_one_line(data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder", encoding="utf-8")
    argv = ["--domain-a", str(data[0]), "--domain-b", str(data[1]), "--out", str(blocker / "run"), "--quiet"]
    assert tr.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "a_file" in err
    assert blocker.read_text(encoding="utf-8") == "not a folder"


def _full_disk(monkeypatch):
    """torch.save as it fails on a full disk (a RuntimeError, not an OSError), and almost no room."""
    import shutil

    def failing_save(obj, handle, *args, **kwargs):
        handle.write(b"part of a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed "
                           "writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", failing_save)
    almost_full = shutil._ntuple_diskusage(10**9, 10**9 - 5000, 5000)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: almost_full)


def test_a_full_disk_says_so_and_keeps_the_previous_checkpoint(data, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    out = tmp_path / "o"
    run(data, out, iterations=2)
    argv = ["--domain-a", str(data[0]), "--domain-b", str(data[1]), "--out", str(out), "--image-size", "32",
            "--num-features", "8", "--num-residuals", "1", "--sample-every", "0", "--quiet", "--resume",
            "--iterations", "3"]
    with monkeypatch.context() as mp:
        _full_disk(mp)
        assert tr.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no space left on {out} (needed about ") and " MB for checkpoint.pt" in err
    assert err.count("\n") == 1
    assert load_checkpoint(out, tr.PREVIOUS_CHECKPOINT)["iteration"] == 2  # the previous one survives
    assert not list(out.glob(".*.tmp"))
    assert tr.main(argv) == 0 and load_checkpoint(out)["iteration"] == 3  # room again: resumes


def test_a_save_error_with_room_on_the_disk_stays_a_bug(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a real bug")))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 0, 10**12))
    with pytest.raises(RuntimeError, match="a real bug"):
        atomic_save({"x": torch.zeros(3)}, tmp_path / "x.pt")


# --------------------------------------------------------------------- speed estimate
def test_the_run_prints_its_expected_duration_early(data, tmp_path, capsys):
    now = [0.0]

    def clock() -> float:  # every reading of the clock "takes" 3 s
        now[0] += 3.0
        return now[0]

    tr.train(tiny(data, tmp_path / "o", iterations=30), progress=True, clock=clock)
    out = capsys.readouterr().out
    # 3 iterations timed after 3 to warm up (a tenth of the run, at most 10), 3 s each
    assert ("Estimate: the run's 30 iterations take about 2 min on this machine (3.0 s per iteration, "
            "the median of iterations 4–6, after 3 warm-up iterations).") in out


def test_the_estimate_skips_the_slow_first_iterations(data, tmp_path, capsys):
    """The first iterations of a session are slow (kernels chosen, caches filled): an estimate
    taken on them said 4.7 h for a run that took 27 minutes."""
    # read once at the start, then once per iteration: 8 s thrice (warm-up), then the run's 0.5 s
    readings = itertools.accumulate([0.0, 8.0, 8.0, 8.0] + [0.5] * 100)
    tr.train(tiny(data, tmp_path / "o", iterations=40), progress=True, clock=lambda: next(readings))
    out = capsys.readouterr().out
    # warm-up ends after 10 s (two iterations); the third slow one is outvoted by the median
    assert "(0.5 s per iteration, the median of iterations 3–6, after 2 warm-up iterations)" in out
    assert "the run's 40 iterations take about 20 s" in out


def test_an_error_between_iterations_keeps_the_work_done(data, tmp_path, capsys):
    def broken(event):  # e.g. data the skips cannot absorb, or a bug in a notebook's callback
        if event.iteration == 3:
            raise ValueError("something unexpected")

    out = tmp_path / "o"
    with pytest.raises(ValueError, match="something unexpected"):
        tr.train(tiny(data, out, iterations=10), progress=False, callback=broken)
    assert load_checkpoint(out)["iteration"] == 3  # not lost: the periodic checkpoint was at 100
    assert "Saved a checkpoint at iteration 3" in capsys.readouterr().err
    assert pd.read_csv(out / tr.HISTORY)["iteration"].tolist() == [1, 2, 3]
    resumed = run(data, out, iterations=5, resume=True)
    whole = run(data, tmp_path / "whole", iterations=5)
    for name in NETS:  # and the resume is still exact
        assert_same(getattr(whole, name).state_dict(), getattr(resumed, name).state_dict(), name)


# --------------------------------------------------------------------- CPU threads
def test_every_path_that_trains_picks_its_cpu_threads_by_timing(data, tmp_path, monkeypatch, capsys):
    """The demo, `python -m utils.train` and the notebooks all train through `run_loop.train`,
    which times the run's own step at the default thread count and at one (speed.pick_cpu_threads)
    before it seeds itself: the probe changes which threads run, never the run's result."""
    from utils import demo, notebook, run_loop, speed

    assert demo.train is run_loop.train and notebook.train is run_loop.train and tr.train is run_loop.train
    plain = run(data, tmp_path / "plain", iterations=2)  # one thread (this module's fixture): no probe
    probes = []

    def pick(step):  # what pick_cpu_threads does, at a thread count fixed for the comparison
        probes.append(step)
        step()
        torch.set_num_threads(1)
        return 1

    monkeypatch.setattr(speed, "pick_cpu_threads", pick)
    torch.set_num_threads(2)  # the one_thread fixture restores the count afterwards
    argv = ["--domain-a", str(data[0]), "--domain-b", str(data[1]), "--out", str(tmp_path / "cli"),
            "--image-size", "32", "--num-features", "8", "--num-residuals", "1", "--sample-every", "0",
            "--iterations", "2", "--checkpoint-every", "100"]
    assert tr.main(argv) == 0
    assert len(probes) == 1 and "CPU threads: 1 (the faster of 2 and 1 here" in capsys.readouterr().out
    for name in NETS:  # the probe ran a real step on throw-away networks: the run is bit for bit the same
        assert_same(getattr(plain, name).state_dict(),
                    torch.load(tmp_path / "cli" / tr.CHECKPOINT, weights_only=True)[name], name)
