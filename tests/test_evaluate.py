"""Known-answer tests for utils.evaluate on tiny hand-made faces (no download, no real data)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from utils import domain_metrics
from utils import evaluate as ev
from utils.ch06util import Generator, list_images
from utils.checkpoints import CheckpointError, atomic_save
from utils.inference import load_images

SIZE = 32
BLACK, BLOND = (20, 20, 20), (230, 200, 120)
HAIR_ROWS = 10  # the top rows of each toy face are hair


def face(seed: int, hair: tuple[int, int, int], size: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    """A flat-colour 'face': background, a skin rectangle, a hair band on top."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.empty((h, w, 3), np.uint8)
    pixels[:] = rng.integers(60, 200, 3)
    pixels[h // 3:, w // 4: 3 * w // 4] = rng.integers(150, 220, 3)  # skin
    pixels[:HAIR_ROWS * h // SIZE] = hair
    return pixels


def write_faces(root: Path, count: int, hair: tuple[int, int, int], other: tuple[int, int, int],
                start: int = 1, size: tuple[int, int] = (SIZE, SIZE)) -> tuple[Path, Path]:
    """`count` sources in root/test, their swapped renders and hair masks in root/truth."""
    test, truth = root / "test", root / "truth"
    for sub in (test, truth / "swapped", truth / "mask"):
        sub.mkdir(parents=True, exist_ok=True)
    for k in range(start, start + count):
        Image.fromarray(face(k, hair, size)).save(test / f"{k:06d}.png")
        Image.fromarray(face(k, other, size)).save(truth / "swapped" / f"{k:06d}.png")
        mask = np.zeros((size[1], size[0]), np.uint8)
        mask[:HAIR_ROWS * size[1] // SIZE] = 255
        Image.fromarray(mask, mode="L").save(truth / "mask" / f"{k:06d}.png")
    return test, truth


class Lookup(nn.Module):
    """A 'generator' that returns, for each input, the output stored for the nearest known input."""

    def __init__(self, inputs: torch.Tensor, outputs: torch.Tensor):
        super().__init__()
        self.register_buffer("inputs", inputs)
        self.register_buffer("outputs", outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distance = ((x[:, None] - self.inputs[None]) ** 2).mean((2, 3, 4))
        return self.outputs[distance.argmin(1)]


class Tint(nn.Module):
    """Recolours the whole picture 70% of the way towards blond."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blond = torch.tensor(BLOND, dtype=x.dtype).view(1, 3, 1, 1) / 127.5 - 1
        return 0.3 * x + 0.7 * blond


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def toy(tmp_path: Path):
    """Six black-haired faces with blond truth, loaded sources and truths in model space."""
    test, truth = write_faces(tmp_path, 6, BLACK, BLOND)
    sources = list_images(test)
    src = load_images(sources, SIZE)
    swapped = load_images([truth / "swapped" / p.name for p in sources], SIZE)
    return test, truth, src, swapped


def run(gen: nn.Module, back: nn.Module, toy, **options) -> dict:
    test, truth, _, _ = toy
    return ev.evaluate_direction_with_truth(gen, back, test, truth, image_size=SIZE, batch_size=4, **options)


def test_identity_scores_zero_accuracy_and_perfect_preservation(toy):
    result = run(nn.Identity(), nn.Identity(), toy)
    assert result["hair_accuracy"] == 0
    assert result["psnr_outside_hair"] == 100.0  # no error: the documented cap, not inf
    assert result["ssim_outside_hair"] == pytest.approx(1.0, abs=1e-4)
    assert result["cycle_l1"] == 0
    assert result["l1_to_truth"] > 0
    assert result["count"] == 6
    assert set(result) == {"hair_accuracy", "psnr_outside_hair", "ssim_outside_hair", "l1_to_truth",
                           "cycle_l1", "count"}


def test_perfect_generator_scores_full_accuracy(toy):
    _, _, src, swapped = toy
    result = run(Lookup(src, swapped), Lookup(swapped, src), toy)
    assert result["hair_accuracy"] == 1
    assert result["psnr_outside_hair"] >= 60
    assert result["l1_to_truth"] == pytest.approx(0, abs=1e-6)
    assert result["cycle_l1"] == pytest.approx(0, abs=1e-6)


def test_global_tint_fails_accuracy(toy):
    # the hair does move towards blond, but so does everything else
    result = run(Tint(), nn.Identity(), toy)
    assert result["hair_accuracy"] == 0
    assert result["psnr_outside_hair"] < 20
    # it is rule (ii), the rest of the face, that fails it: the hair itself did turn blond
    assert run(Tint(), nn.Identity(), toy, max_outside_mae=1.0)["hair_accuracy"] == 1


def test_wrong_direction_fails_accuracy(toy):
    _, _, src, _ = toy
    darker = src.clone()
    darker[:, :, :HAIR_ROWS] = -1.0  # black hair made blacker instead of blond
    result = run(Lookup(src, darker), nn.Identity(), toy)
    assert result["hair_accuracy"] == 0
    assert result["psnr_outside_hair"] == 100.0  # the rest was left alone: only (i) fails


def test_constant_error_matches_psnr_formula(toy):
    _, _, src, swapped = toy
    # +0.1 in model units is +0.05 in [0, 1] units everywhere: MSE 0.0025 -> 26.02 dB
    result = run(Lookup(src, swapped + 0.1), nn.Identity(), toy)
    assert result["psnr_outside_hair"] == pytest.approx(10 * math.log10(1 / 0.05**2), abs=1e-3)
    assert result["l1_to_truth"] == pytest.approx(0.05, abs=1e-5)
    assert result["hair_accuracy"] == 1  # 0.05 outside is under the 0.1 threshold
    strict = run(Lookup(src, swapped + 0.1), nn.Identity(), toy, max_outside_mae=0.04)
    assert strict["hair_accuracy"] == 0


def test_psnr_and_masks():
    a = torch.full((2, 3, 8, 8), 0.5)
    assert ev.psnr(a, a + 0.1).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    assert ev.psnr(a, a).tolist() == [100.0, 100.0]
    mask = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    mask[..., 4, 4] = True
    assert int(ev.grow_mask(mask, 2).sum()) == 25
    assert int(ev.shrink_mask(ev.grow_mask(mask, 2), 1).sum()) == 9


def test_masked_ssim_one_for_identical_lower_for_noise():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 32, 32)
    everywhere = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    assert ev.masked_ssim(image, image, everywhere).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    noisy = (image + 0.2 * torch.randn_like(image)).clamp(0, 1)
    assert (ev.masked_ssim(noisy, image, everywhere) < 0.9).all()
    # noise only in the top rows: averaged away from them (beyond the 11x11 window), SSIM is 1 again
    top = torch.zeros_like(everywhere)
    top[..., :8, :] = True
    partly = torch.where(top, noisy, image)
    assert (ev.masked_ssim(partly, image, everywhere) < 0.99).all()
    far = ~ev.grow_mask(top, 5)
    assert ev.masked_ssim(partly, image, far).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)


def test_evaluate_with_truth_both_directions_and_glasses_names(tmp_path):
    test_A, truth = write_faces(tmp_path / "a", 3, BLACK, BLOND)
    test_B, _ = write_faces(tmp_path / "b", 2, BLOND, BLACK, start=10)
    for sub in ("swapped", "mask"):  # one truth folder for all faces, as the synthetic data has
        for p in (tmp_path / "b" / "truth" / sub).iterdir():
            p.replace(truth / sub / p.name)
    result = ev.evaluate_with_truth(nn.Identity(), nn.Identity(), test_A, test_B, truth, image_size=SIZE)
    assert list(result) == ["black_to_blond", "blond_to_black"]
    assert result["black_to_blond"]["count"] == 3 and result["blond_to_black"]["count"] == 2
    glasses = ev.evaluate_with_truth(nn.Identity(), nn.Identity(), test_A, test_B, truth, kind="glasses",
                                     image_size=SIZE)
    assert list(glasses) == ["remove_glasses", "add_glasses"]
    assert "glasses_accuracy" in glasses["add_glasses"]


def test_missing_truth_names_the_file(toy):
    test, truth, _, _ = toy
    (truth / "mask" / "000003.png").unlink()
    with pytest.raises(FileNotFoundError, match="000003.png"):
        ev.evaluate_direction_with_truth(nn.Identity(), nn.Identity(), test, truth, image_size=SIZE)


class HairSwap(nn.Module):
    """Paints the hair band with a fixed colour: a perfect translator for the toy domains."""

    def __init__(self, color: tuple[int, int, int]):
        super().__init__()
        self.color = torch.tensor(color, dtype=torch.float32).view(1, 3, 1, 1) / 127.5 - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        out[:, :, :HAIR_ROWS] = self.color
        return out


def test_classifier_scores_without_truth(tmp_path, capsys):
    test_A, _ = write_faces(tmp_path / "a", 16, BLACK, BLOND)
    test_B, _ = write_faces(tmp_path / "b", 16, BLOND, BLACK, start=100)
    options = {"image_size": SIZE, "classifier_size": SIZE, "classifier_steps": 60, "batch_size": 16}
    unchanged = ev.evaluate_without_truth(nn.Identity(), nn.Identity(), test_A, test_B, **options)
    assert "FID/KID skipped" in capsys.readouterr().out
    for name in ("black_to_blond", "blond_to_black"):
        scores = unchanged[name]
        assert scores["classifier_accuracy"] >= 0.9  # held-out real images: trustworthy
        assert scores["real_target_score"] >= 0.9  # real B judged B, real A judged A
        assert scores["domain_score"] <= 0.1  # an unchanged image stays in its own domain
        assert scores["cycle_l1"] == 0
        assert scores["count"] == 8  # every other image trained the classifier
    swapped = ev.evaluate_without_truth(HairSwap(BLACK), HairSwap(BLOND), test_A, test_B, **options)
    assert swapped["black_to_blond"]["domain_score"] >= 0.9
    assert swapped["blond_to_black"]["domain_score"] >= 0.9


def test_fid_needs_a_local_weights_file(tmp_path):
    missing = tmp_path / ev.INCEPTION_FILE
    with pytest.raises(FileNotFoundError) as error:
        ev.load_inception(missing)
    message = str(error.value)
    assert str(missing) in message and ev.INCEPTION_URL in message and "--inception-weights" in message
    assert "Nothing is downloaded" in ev.inception_help()
    holds_code = tmp_path / "code.pth"
    # not plain tensors: refused before torch-fidelity (weights_only=False) reads it
    torch.save(argparse.Namespace(x=1), holds_code)
    with pytest.raises(CheckpointError):
        ev.load_inception(holds_code)


def test_fid_without_torch_fidelity_says_how_to_install(tmp_path, monkeypatch):
    weights = tmp_path / ev.INCEPTION_FILE
    torch.save({"fc.weight": torch.zeros(2, 2)}, weights)
    monkeypatch.setattr(domain_metrics, "has_torch_fidelity", lambda: False)
    with pytest.raises(ImportError, match=r"pip install \"torch-fidelity>=0.3,<0.4\""):
        ev.load_inception(weights)


def test_cli_writes_json(tmp_path, capsys):
    size = (40, 48)  # not square, not the evaluation size: exercises the resizing
    test_A, truth = write_faces(tmp_path / "a", 3, BLACK, BLOND, size=size)
    test_B, _ = write_faces(tmp_path / "b", 3, BLOND, BLACK, start=10, size=size)
    for sub in ("swapped", "mask"):
        for p in (tmp_path / "b" / "truth" / sub).iterdir():
            p.replace(truth / sub / p.name)
    torch.manual_seed(0)
    for name in ("gen_black.pth", "gen_blond.pth"):
        atomic_save(Generator(3, num_features=8, num_residuals=1).state_dict(), tmp_path / name)
    common = ["--gen-black", str(tmp_path / "gen_black.pth"), "--gen-blond", str(tmp_path / "gen_blond.pth"),
              "--test-a", str(test_A), "--test-b", str(test_B), "--image-size", "32",
              "--num-features", "8", "--num-residuals", "1", "--device", "cpu"]
    out = tmp_path / "metrics.json"
    assert ev.main([*common, "--truth", str(truth), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"black_to_blond", "blond_to_black"}
    assert set(metrics["black_to_blond"]) == {"hair_accuracy", "psnr_outside_hair", "ssim_outside_hair",
                                              "l1_to_truth", "cycle_l1", "count"}
    assert metrics["blond_to_black"]["count"] == 3
    assert "psnr_outside_hair" in capsys.readouterr().out
    out2 = tmp_path / "no_truth.json"
    assert ev.main([*common, "--classifier-steps", "3", "--classifier-size", "16", "--json", str(out2)]) == 0
    metrics = json.loads(out2.read_text())
    assert set(metrics["black_to_blond"]) == {"domain_score", "real_target_score", "classifier_accuracy",
                                              "cycle_l1", "count"}


def test_colour_offset_effect_tells_a_colour_blind_generator_from_one_that_sees_colour():
    torch.manual_seed(0)
    gen = Generator(3, num_features=8, num_residuals=1).eval()
    assert ev.colour_offset_effect(gen, torch.rand(2, 3, SIZE, SIZE) * 1.2 - 0.6) < 1e-4
    # an identity "generator" passes the offset straight through: 0.3 at most
    assert ev.colour_offset_effect(nn.Identity(), torch.zeros(1, 3, 8, 8)) == pytest.approx(0.3)


# ------------------------------------------------------------------ the command line's mistakes
def _demo_like_files(files: Path) -> None:
    """What `make demo` leaves in files/: 16-wide, 4-block generators, held-out faces, ground truth."""
    synthetic = files / "synthetic"
    test_A, truth = write_faces(synthetic / "a", 2, BLACK, BLOND)
    test_B, _ = write_faces(synthetic / "b", 2, BLOND, BLACK, start=10)
    (synthetic / "test").mkdir()
    test_A.rename(synthetic / "test" / "black")
    test_B.rename(synthetic / "test" / "blond")
    (synthetic / "ground_truth").mkdir()
    truth.rename(synthetic / "ground_truth" / "celeba")
    for sub in ("swapped", "mask"):
        for p in (synthetic / "b" / "truth" / sub).iterdir():
            p.replace(synthetic / "ground_truth" / "celeba" / sub / p.name)
    torch.manual_seed(0)
    for name in ("gen_black.pth", "gen_blond.pth"):
        gen = Generator(3, num_features=16, num_residuals=4)
        atomic_save(gen.state_dict(), files / "demo" / "run" / name)


def test_the_readmes_evaluate_command_works_on_the_demos_weights(tmp_path, capsys):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    command = next(line.strip().strip("`") for line in readme.splitlines()
                   if line.strip().strip("`").startswith("python -m utils.evaluate --gen-black files/demo/"))
    _demo_like_files(tmp_path / "files")
    argv = [arg.replace("files/", f"{tmp_path / 'files'}/") for arg in command.split()[3:]]
    assert ev.main([*argv, "--device", "cpu"]) == 0  # sizes read from the files (16 wide, 4 blocks)
    assert "hair_accuracy" in capsys.readouterr().out


@pytest.fixture
def demo_files(tmp_path):
    files = tmp_path / "files"
    _demo_like_files(files)
    return ["--gen-black", str(files / "demo/run/gen_black.pth"), "--gen-blond",
            str(files / "demo/run/gen_blond.pth"), "--test-a", str(files / "synthetic/test/black"),
            "--test-b", str(files / "synthetic/test/blond"), "--truth",
            str(files / "synthetic/ground_truth/celeba"), "--image-size", "32", "--device", "cpu"], files


@pytest.mark.parametrize("extra, message", [
    (["--limit", "-2"], "--limit must be at least 0 (0 means all images), got -2"),
    (["--image-size", "30"], "image_size=30: use a multiple of 4"),
    (["--num-residuals", "-1"], "--num-residuals must be at least 0, got -1"),
    (["--num-features", "64", "--num-residuals", "9"], "does not fit Generator"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--domain-a", "x"], "--domain-a only apply without --truth"),
    (["--device", "cuda:7"], "no such device"),
    (["--gen-black", "nowhere/gen_black.pth"], "No weights file at nowhere/gen_black.pth"),
])
def test_cli_mistakes_are_one_line_and_exit_2(demo_files, capsys, monkeypatch, extra, message):
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    argv, _ = demo_files
    assert ev.main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_empty_or_missing_test_folder_is_one_line(demo_files, capsys, monkeypatch):
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    argv, files = demo_files
    empty = files / "empty"
    empty.mkdir()
    assert ev.main([*argv, "--test-a", str(empty)]) == 2
    assert f"error: No images in {empty}." in capsys.readouterr().err
    assert ev.main([*argv, "--test-b", str(files / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_limit_zero_means_all_and_a_negative_limit_is_refused(toy):
    test, truth, _, _ = toy
    scores = ev.evaluate_direction_with_truth(nn.Identity(), nn.Identity(), test, truth, image_size=SIZE,
                                              limit=0)
    assert scores["count"] == 6
    assert ev.evaluate_direction_with_truth(nn.Identity(), nn.Identity(), test, truth, image_size=SIZE,
                                            limit=2)["count"] == 2
    with pytest.raises(ValueError, match="limit=-2"):
        ev.evaluate_direction_with_truth(nn.Identity(), nn.Identity(), test, truth, image_size=SIZE, limit=-2)


def test_the_image_size_defaults_to_the_one_the_run_trained_at(demo_files, capsys):
    argv, files = demo_files
    argv = argv[:argv.index("--image-size")] + argv[argv.index("--image-size") + 2:]
    run = files / "demo" / "run"
    pair = {"gen_A": torch.load(run / "gen_black.pth", weights_only=True),
            "gen_B": torch.load(run / "gen_blond.pth", weights_only=True)}
    atomic_save({"config": {"image_size": 32, "num_features": 16}, **pair}, run / "checkpoint.pt")
    assert ev.main(argv) == 0
    assert f"Scoring at 32 px (the size {run / 'checkpoint.pt'} was trained at" in capsys.readouterr().out
    # the checkpoint of another run (e.g. `make weights --force` over this one): its size is not theirs
    other = {k: v + 1 if v.is_floating_point() else v for k, v in pair["gen_B"].items()}
    atomic_save({"config": {"image_size": 32}, "gen_A": pair["gen_A"], "gen_B": other}, run / "checkpoint.pt")
    assert ev.main([*argv, "--limit", "1"]) == 0
    printed = capsys.readouterr().out
    assert "Scoring at 256 px (the chapter's size: " in printed
    assert "does not hold these generators" in printed
    (run / "checkpoint.pt").unlink()
    assert ev.main([*argv, "--limit", "1"]) == 0
    assert "Scoring at 256 px (the chapter's size: no training size found in" in capsys.readouterr().out


# ---------------------------------------------------------------- issue 22: --json writes only its own file
def test_json_a_folder_is_one_line_before_any_work(demo_files, capsys, monkeypatch):
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    argv, files = demo_files
    assert ev.main([*argv, "--json", str(files)]) == 2
    err = capsys.readouterr().err
    assert "--json" in err and "is a folder: give the name of a file" in err and "Errno" not in err


def test_json_never_replaces_a_file_it_did_not_write_without_force(demo_files, capsys, monkeypatch):
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    argv, files = demo_files
    mine = files / "results.json"
    mine.write_text('{"mine": 1}')
    assert ev.main([*argv, "--limit", "1", "--json", str(mine)]) == 2
    assert "results.json, which this command did not write" in capsys.readouterr().err
    assert mine.read_text() == '{"mine": 1}'
    assert ev.main([*argv, "--limit", "1", "--json", str(mine), "--force"]) == 0
    assert "black_to_blond" in json.loads(mine.read_text())
    assert ev.main([*argv, "--limit", "1", "--json", str(mine)]) == 0  # its own now: replaced freely
