"""`make demo` end to end in fast mode: every file it promises, with numbers in metrics.json."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from utils import demo  # noqa: E402

DIRECTIONS = ("black_to_blond", "blond_to_black")
TRUTH_KEYS = ("hair_accuracy", "psnr_outside_hair", "ssim_outside_hair", "l1_to_truth", "cycle_l1", "count")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One fast demo into a temporary files/ folder (shared by the tests below: it costs seconds)."""
    files = tmp_path_factory.mktemp("files")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CH06_FILES", str(files))
        mp.setenv("CH06_FAST", "1")
        metrics = demo.run_demo(device="cpu", progress=False)
    return files, metrics


def test_demo_writes_grids_curves_and_metrics(demo_run):
    files, metrics = demo_run
    out = files / "demo"
    for name in ("round_trip_training.png", "round_trip_held_out.png", "loss_curves.png"):
        with Image.open(out / name) as image:
            assert image.width > 100 and image.height > 100, name
    assert (out / "run" / "gen_black.pth").is_file() and (out / "run" / "gen_blond.pth").is_file()
    saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(metrics))  # the file holds what run_demo returned
    for direction in DIRECTIONS:
        for key in TRUTH_KEYS:
            value = saved[direction][key]
            assert isinstance(value, int | float) and math.isfinite(value), (direction, key, value)
        assert 0 <= saved[direction]["hair_accuracy"] <= 1
        assert saved[direction]["count"] == demo.FAST.test_count
    assert saved["minutes"] > 0 and saved["iterations"] == demo.FAST.iterations
    assert saved["stopped_by"] == "iterations"
    assert saved["data"] == "synthetic faces" and "cpu" in saved["device"]
    assert saved["settings"]["image_size"] == demo.FAST.image_size
    # extra code – beyond the chapter: the demo's generator variant is recorded and loads back as itself
    assert saved["settings"]["generator"] == demo.DEMO.generator == demo.FAST.generator
    from utils.checkpoints import load_generator

    assert load_generator(out / "run" / "gen_black.pth").variant == demo.DEMO.generator


def test_demo_trained_on_the_split_and_held_faces_out(demo_run):
    files, _ = demo_run
    data = files / "synthetic"
    held_out = {p.name for p in (data / "test" / "black").iterdir()}
    trained = {p.name for p in (data / "black").iterdir()}
    assert len(held_out) == demo.FAST.test_count and not held_out & trained


def test_demo_rerun_replaces_its_own_run_but_not_foreign_files(demo_run, monkeypatch):
    files, _ = demo_run
    run = files / "demo" / "run"
    (run / "notes.txt").write_text("mine", encoding="utf-8")
    monkeypatch.setenv("CH06_FILES", str(files))
    monkeypatch.setenv("CH06_FAST", "1")
    with pytest.raises(FileExistsError, match="notes.txt"):
        demo.run_demo(device="cpu", progress=False)
    assert (run / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (run / "gen_black.pth").is_file()  # nothing was removed before the refusal


def test_settings_override_and_validation():
    assert demo.settings_for(False).iterations == demo.DEMO.iterations
    assert demo.settings_for(True, 7).iterations == 7
    with pytest.raises(ValueError, match="iterations"):
        demo.settings_for(False, 0)


def test_too_few_minutes_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CH06_FILES", str(tmp_path))
    with pytest.raises(ValueError, match="minutes"):
        demo.run_demo(tmp_path / "out", minutes=0.001, fast=True, device="cpu", progress=False)
