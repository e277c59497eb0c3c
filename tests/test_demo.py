"""`make demo` end to end in fast mode: every file it promises, with numbers in metrics.json."""

from __future__ import annotations

import dataclasses
import json
import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from tests.conftest import lock_held_elsewhere  # noqa: E402
from utils import demo  # noqa: E402
from utils.locks import FolderBusyError  # noqa: E402

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
    assert saved["stopped_by"] == "iterations" and saved["complete"] is True and "note" not in saved
    assert saved["data"] == "synthetic faces" and "cpu" in saved["device"]
    from utils.ch06util import pick_precision

    assert (saved["precision"], saved["precision_reason"]) == (pick_precision("cpu").name,
                                                                pick_precision("cpu").reason)
    assert saved["settings"]["image_size"] == demo.FAST.image_size
    # extra code – beyond the chapter: the demo's generator variant is recorded and loads back as itself
    assert saved["settings"]["generator"] == demo.DEMO.generator == demo.FAST.generator
    from utils.checkpoints import load_generator

    assert load_generator(out / "run" / "gen_black.pth").variant == demo.DEMO.generator


def _scores(shift: float = 0.0) -> dict[str, dict[str, float]]:
    """Held-out scores at the README's bfloat16 row, the blond → black PSNR moved by `shift` dB."""
    row = demo.DEMO_REFERENCE["bfloat16"]
    scores = {d: {m: mean for m, (mean, _) in row[d].items()} for d in DIRECTIONS}
    scores["blond_to_black"]["psnr_outside_hair"] += shift
    return scores


def test_the_summary_compares_with_the_readme_row_of_its_precision():
    line = demo.compare_with_readme(_scores(), "bfloat16")
    assert line.startswith("README, bfloat16 (seeds 0 and 1)")
    assert line.endswith("all four match the 2 seeds' range.")
    mean, half = demo.DEMO_REFERENCE["bfloat16"]["blond_to_black"]["psnr_outside_hair"]
    line = demo.compare_with_readme(_scores(shift=half + 0.3), "bfloat16")
    assert "outside the 2 seeds' range: blond → black psnr_outside_hair" in line
    assert f"{mean - half:.1f}–{mean + half:.1f}" in line and "black → blond hair" not in line
    assert "no figures for float16" in demo.compare_with_readme(_scores(), "float16")


def test_a_run_at_the_readme_row_as_printed_matches_it():
    # the README rounds (73.43 prints as 73.4); a run that scores what it prints is not "outside"
    mean, half = demo.DEMO_REFERENCE["bfloat16"]["black_to_blond"]["psnr_outside_hair"]
    scores = _scores()
    scores["black_to_blond"]["psnr_outside_hair"] = round(mean + half, 1)
    assert demo.compare_with_readme(scores, "bfloat16").endswith("all four match the 2 seeds' range.")
    scores["black_to_blond"]["psnr_outside_hair"] = round(mean + half, 1) + 0.1
    assert "outside the 2 seeds' range: black → blond psnr_outside_hair" in demo.compare_with_readme(
        scores, "bfloat16")


def test_the_readme_shows_the_demo_reference_row_of_each_precision():
    from utils.paths import REPO_ROOT

    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert set(demo.DEMO_REFERENCE) == {"float32", "bfloat16"}
    for precision in demo.DEMO_REFERENCE:
        rows = [line for line in lines if line.startswith(f"| {precision} ")]
        assert len(rows) == 1, precision  # one row per precision in the two-seed table
        cells = [cell.strip() for cell in rows[0].strip("|").split("|")[1:5]]
        assert cells == demo.reference_cells(precision)


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


def test_a_run_the_demo_did_not_mark_is_never_replaced(tmp_path, monkeypatch):
    """A reader's own training run in <out>/run (the very file names utils.train writes) stays."""
    run = tmp_path / "out" / "run"
    run.mkdir(parents=True)
    mine = {"checkpoint.pt": b"my week of training", "gen_black.pth": b"mine", "history.csv": b"iteration\n"}
    for name, content in mine.items():
        (run / name).write_bytes(content)
    monkeypatch.setenv("CH06_FILES", str(tmp_path))
    with pytest.raises(FileExistsError, match=demo.MARKER):
        demo.run_demo(tmp_path / "out", fast=True, device="cpu", progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == mine
    assert not (tmp_path / "synthetic").exists()  # refused before any data was generated


def test_the_demo_marks_its_run_folder(demo_run):
    files, _ = demo_run
    assert (files / "demo" / "run" / demo.MARKER).is_file()


def test_a_minutes_cap_says_plainly_that_the_run_stopped_early(demo_run, tmp_path, monkeypatch, capsys):
    files, _ = demo_run
    monkeypatch.setenv("CH06_FILES", str(files))  # the fixture's faces: no new data to make
    now = [0.0]

    def clock() -> float:  # every reading of the training clock "takes" 15 s
        now[0] += 15.0
        return now[0]

    metrics = demo.run_demo(tmp_path / "capped", minutes=1, fast=True, device="cpu", progress=True,
                            clock=clock)
    out = capsys.readouterr().out
    # the speed estimate comes first: 30 s per iteration after the first, 4 iterations planned
    assert ("Estimate: the run's 4 iterations take about 2 min on this machine (30 s per iteration, the "
            "median of iteration 2, after 1 warm-up iteration). The 1-minute budget stops this session "
            "before that.") in out
    note = "stopped at 2 of 4 iterations (the --minutes 1 cap): scores are below what the full run gets."
    assert f"Note: {note}" in out
    saved = json.loads((tmp_path / "capped" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["note"] == note and saved["complete"] is False and saved["stopped_by"] == "minutes"
    assert (saved["iterations"], saved["iterations_planned"]) == (2, 4)
    assert saved == json.loads(json.dumps(metrics))
    # a second demo into the same folder replaces what the first wrote (its own files, its marked run)
    (tmp_path / "capped" / "metrics.json").write_text("stale")
    from utils.ownership import OwnedFiles

    record = OwnedFiles.load(tmp_path / "capped")
    record.claim("metrics.json", demo.OWNER)  # as if the demo had written this content
    record.save()
    demo.run_demo(tmp_path / "capped", minutes=1, fast=True, device="cpu", progress=False, clock=clock)
    assert json.loads((tmp_path / "capped" / "metrics.json").read_text())["stopped_by"] == "minutes"


def test_settings_override_and_validation():
    from utils.cli import SettingError

    assert demo.settings_for(False).iterations == demo.DEMO.iterations
    assert demo.settings_for(True, 7).iterations == 7
    with pytest.raises(SettingError, match="iterations"):
        demo.settings_for(False, 0)
    with pytest.raises(SettingError, match="num_residuals"):
        dataclasses.replace(demo.DEMO, num_residuals=-1)


@pytest.mark.parametrize("argv, message", [
    (["--iterations", "0"], "iterations (--iterations) must be a whole number of at least 1"),
    (["--minutes", "-5"], "minutes (--minutes) must be a number of minutes above 0"),
])
def test_bad_demo_settings_are_one_line_before_any_work(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CH06_FILES", str(tmp_path))
    monkeypatch.setenv("CH06_FAST", "1")
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    assert demo.main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no data generated, no folder made


# --------------------------------------------------------------- issue 22: only its own files, one at a time
def test_a_readers_files_under_the_demos_names_are_never_replaced(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text('{"my": "results"}')
    (out / "loss_curves.png").write_bytes(b"my figure")
    monkeypatch.setenv("CH06_FILES", str(tmp_path))
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    assert demo.main(["--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "loss_curves.png, metrics.json, which this command did not write" in err and "another --out" in err
    assert (out / "metrics.json").read_text() == '{"my": "results"}'
    assert (out / "loss_curves.png").read_bytes() == b"my figure"
    assert not (tmp_path / "synthetic").exists() and not (out / "run").exists()  # refused before any work


def test_a_demo_file_the_reader_saved_over_is_theirs_now(demo_run, monkeypatch):
    files, _ = demo_run
    curves = files / "demo" / "loss_curves.png"
    before = curves.read_bytes()
    curves.unlink()
    curves.write_bytes(before + b" edited")  # e.g. annotated in an image editor, saved under its name
    monkeypatch.setenv("CH06_FILES", str(files))
    try:
        with pytest.raises(FileExistsError, match="loss_curves.png, which this command did not write"):
            demo.run_demo(device="cpu", fast=True, progress=False)
        assert curves.read_bytes() == before + b" edited"
    finally:
        from utils.ownership import OwnedFiles

        record = OwnedFiles.load(files / "demo")  # give it back to the demo for the tests after this one
        record.claim("loss_curves.png", demo.OWNER)
        record.save()


def test_demo_out_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    afile = tmp_path / "demo.txt"
    afile.write_text("notes")
    monkeypatch.setenv("CH06_FILES", str(tmp_path))
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    assert demo.main(["--out", str(afile), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "demo.txt is a file, not a folder" in err and afile.read_text() == "notes"


def test_a_second_demo_into_the_same_folder_is_refused_naming_the_first(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with lock_held_elsewhere(out / "run") as holder:
        monkeypatch.setenv("CH06_FILES", str(tmp_path))
        with pytest.raises(FolderBusyError, match=rf"run is in use by process {holder.pid} "):
            demo.run_demo(out, fast=True, device="cpu", progress=False)
        assert not (tmp_path / "synthetic").exists()
