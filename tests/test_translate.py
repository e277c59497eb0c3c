"""Which generators translate a reader's photo, and the command line that does it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from utils import translate as tr
from utils.ch06util import Generator
from utils.cli import UserError

SMALL = (8, 1)  # width, residual blocks of the test generators


def write_pair(folder, shape=SMALL, trained_at: int | None = None, seed: int = 0):
    """gen_black.pth + gen_blond.pth (and, if `trained_at`, a run record as utils.train writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    gens = {colour: Generator(3, *shape) for colour in ("black", "blond")}
    for colour, gen in gens.items():
        torch.save(gen.state_dict(), folder / tr.GEN_FILES[colour])
    if trained_at is not None:
        torch.save({"config": {"image_size": trained_at}, "gen_A": gens["black"].state_dict(),
                    "gen_B": gens["blond"].state_dict()}, folder / tr.CHECKPOINT)
    return folder


def test_a_trained_run_runs_at_its_training_size(tmp_path):
    write_pair(tmp_path / "demo" / "run", trained_at=48)
    gens = tr.pick_generators(tmp_path)
    assert gens.image_size == 48 and gens.folder == tmp_path / "demo" / "run"
    assert "your trained generators" in gens.description and "48 px" in gens.description


def test_the_published_pair_in_files_wins_and_runs_at_256(tmp_path):
    write_pair(tmp_path, shape=tr.PUBLISHED_SHAPE)
    write_pair(tmp_path / "demo" / "run", trained_at=48)
    gens = tr.pick_generators(tmp_path)
    assert gens.folder == tmp_path and gens.image_size == 256
    assert "published" in gens.description


def test_a_run_record_of_other_weights_does_not_count(tmp_path):
    """Published weights fetched over a notebook-03 run: its checkpoint.pt is not theirs."""
    write_pair(tmp_path, trained_at=48, seed=0)
    write_pair(tmp_path, shape=SMALL, seed=1)  # replaces the .pth files only
    gens = tr.pick_generators(tmp_path, default_size=64)
    assert "unknown training" in gens.description and gens.image_size == 64


def test_weights_folder_is_used_and_checked(tmp_path):
    write_pair(tmp_path / "mine", trained_at=32)
    assert tr.pick_generators(tmp_path / "files", weights=tmp_path / "mine").image_size == 32
    (tmp_path / "mine" / "gen_blond.pth").unlink()
    with pytest.raises(UserError, match="gen_blond.pth not found in"):
        tr.pick_generators(tmp_path / "files", weights=tmp_path / "mine")


def test_no_generators_says_how_to_get_some(tmp_path):
    with pytest.raises(UserError, match="make weights.*make demo"):
        tr.pick_generators(tmp_path)


def test_towards_picks_the_pair_in_order(tmp_path):
    gens = tr.pick_generators(write_pair(tmp_path, trained_at=16))
    assert gens.towards("blond") == (gens.blond, gens.black)
    assert gens.towards("black") == (gens.black, gens.blond)
    with pytest.raises(UserError, match="unknown hair colour"):
        gens.towards("red")


# -------------------------------------------------------------------------------- command line
@pytest.fixture
def skimage_data():
    """scikit-image's bundled photos; the detector must be installed for these tests too."""
    pytest.importorskip("facenet_pytorch", reason='needs pip install --no-deps "facenet-pytorch==2.6.0"')
    return pytest.importorskip("skimage.data")


@pytest.fixture
def sideways_astronaut(tmp_path, skimage_data):
    """The astronaut stored turned on its side with an EXIF tag saying so, as phones do."""
    path = tmp_path / "me.jpg"
    exif = Image.Exif()
    exif[0x0112] = 8  # display: rotate 90° counter-clockwise
    Image.fromarray(skimage_data.astronaut()).transpose(Image.ROTATE_270).save(path, exif=exif, quality=92)
    return path


def test_command_writes_the_face_and_the_pasted_photo(tmp_path, sideways_astronaut, skimage_data, capsys,
                                                      one_thread):
    weights = write_pair(tmp_path / "run", trained_at=32)
    out = tmp_path / "out" / "blond.png"
    assert tr.main([str(sideways_astronaut), "--to", "blond", "--out", str(out), "--weights", str(weights),
                    "--paste"]) == 0
    printed = capsys.readouterr().out
    assert "your trained generators" in printed and "Face found at" in printed
    assert Image.open(out).size == (26, 32)  # 32 px tall, CelebA's 178:218 proportions
    pasted = Image.open(tmp_path / "out" / "blond_pasted.png")
    assert pasted.size == (512, 512)
    upright = np.asarray(Image.fromarray(skimage_data.astronaut())).astype(int)
    assert np.abs(np.asarray(pasted).astype(int)[400:] - upright[400:]).mean() < 3  # upright, intact


def test_command_missing_photo_says_not_found(tmp_path, capsys):
    assert tr.main([str(tmp_path / "nope.jpg"), "--to", "black"]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "nope.jpg" in err and "damaged" not in err and "Traceback" not in err


def test_command_no_face(tmp_path, skimage_data, capsys, one_thread):
    photo = tmp_path / "rocket.png"
    Image.fromarray(skimage_data.rocket()).save(photo)
    assert tr.main([str(photo), "--to", "black", "--weights", str(write_pair(tmp_path / "w"))]) == 2
    assert "no face found" in capsys.readouterr().err


def test_command_never_overwrites_the_photo(tmp_path, sideways_astronaut, capsys):
    before = sideways_astronaut.read_bytes()
    assert tr.main([str(sideways_astronaut), "--to", "black", "--out", str(sideways_astronaut)]) == 2
    assert "would overwrite your photo" in capsys.readouterr().err
    assert sideways_astronaut.read_bytes() == before


def _small_photo(path):
    Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(path)
    return path


def test_command_refuses_a_readers_file_under_the_out_name_before_any_work(tmp_path, capsys):
    photo = _small_photo(tmp_path / "me.png")
    mine = tmp_path / "result.png"
    mine.write_bytes(b"my own picture")
    assert tr.main([str(photo), "--to", "black", "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "result.png, which this command did not write" in err and "--force" in err
    assert mine.read_bytes() == b"my own picture"


def test_command_out_a_folder_or_under_a_file_is_one_line(tmp_path, capsys):
    photo = _small_photo(tmp_path / "me.png")
    (tmp_path / "dir.png").mkdir()
    assert tr.main([str(photo), "--to", "black", "--out", str(tmp_path / "dir.png")]) == 2
    assert "is a folder: give the name of a file" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert tr.main([str(photo), "--to", "black", "--out", str(tmp_path / "afile" / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "afile is a file, not a folder" in err and "Errno" not in err


@pytest.mark.parametrize("device, words", [("gpu", "is not a device"), ("cuda:7", "no such device")])
def test_command_checks_the_device_like_every_other_command(tmp_path, capsys, device, words):
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has eight GPUs")
    photo = _small_photo(tmp_path / "me.png")
    assert tr.main([str(photo), "--to", "black", "--device", device]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_command_a_header_claiming_a_giant_picture_is_one_line(tmp_path, capsys):
    """A PNG whose header says 20000×20000 (a decompression bomb): refused, no traceback."""
    import struct
    import zlib

    path = _small_photo(tmp_path / "bomb.png")
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", 20000, 20000)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    path.write_bytes(bytes(data))
    assert tr.main([str(path), "--to", "black"]) == 2
    err = capsys.readouterr().err
    assert "too large to decode safely" in err and "Traceback" not in err


def test_generators_with_nan_weights_are_refused_not_run(tmp_path):
    folder = write_pair(tmp_path / "run", trained_at=32)
    state = torch.load(folder / "gen_blond.pth", weights_only=True)
    state["initial.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, folder / "gen_blond.pth")
    with pytest.raises(UserError, match=r"gen_blond.pth holds weights that are not finite.*initial.0.weight"):
        tr.pick_generators(weights=folder)


def test_a_checkpoint_whose_other_generator_differs_does_not_give_the_size(tmp_path):
    """Only a checkpoint holding both generators vouches for their training size."""
    write_pair(tmp_path, trained_at=48, seed=0)
    torch.manual_seed(5)
    torch.save(Generator(3, *SMALL).state_dict(), tmp_path / "gen_blond.pth")  # one file replaced
    gens = tr.pick_generators(tmp_path, default_size=64)
    assert gens.image_size == 64 and "unknown training" in gens.description


# ----------------------------------------------------------------------------- notebook helpers
class FakeUpload:
    """What `ipywidgets.FileUpload().value` holds after a choice (8.x: a tuple of dicts)."""

    def __init__(self, value):
        self.value = value


def _png_bytes(pixels: np.ndarray, mode: str | None = None) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_photo_from_an_upload_uses_the_same_loader(tmp_path):
    rgba = np.zeros((6, 5, 4), np.uint8)  # fully transparent: must come out white
    content = memoryview(_png_bytes(rgba, "RGBA"))
    for value in ((({"name": "me.png", "content": content}),),  # ipywidgets 8
                  {"me.png": {"content": bytes(content), "metadata": {}}}):  # ipywidgets 7
        photo, name = tr.photo_from(FakeUpload(value), tmp_path / "ignored.jpg")
        assert name == "me.png" and photo.size == (5, 6) and (np.asarray(photo) == 255).all()


def test_photo_from_a_path_then_the_bundled_photo(tmp_path):
    path = tmp_path / "grey.png"
    path.write_bytes(_png_bytes(np.full((7, 9), 50, np.uint8)))
    photo, name = tr.photo_from(FakeUpload(()), path)
    assert name == str(path) and photo.mode == "RGB" and photo.size == (9, 7)
    with pytest.raises(UserError, match="not found"):
        tr.photo_from(None, tmp_path / "missing.jpg")
    pytest.importorskip("skimage.data")
    photo, name = tr.photo_from(None, None)
    assert name == tr.BUNDLED_PHOTO and photo.size == (512, 512)


def test_an_empty_or_broken_upload_is_named(tmp_path):
    from utils.images import NotAnImageError

    with pytest.raises(NotAnImageError, match="empty.png is empty"):
        tr.photo_from(FakeUpload(({"name": "empty.png", "content": b""},)))
    with pytest.raises(NotAnImageError, match="junk.jpg is not an image or is damaged"):
        tr.photo_from(FakeUpload(({"name": "junk.jpg", "content": b"<html>"},)))


def test_has_generators_looks_where_pick_generators_looks(tmp_path):
    assert not tr.has_generators(tmp_path)
    write_pair(tmp_path / "demo" / "run")
    assert tr.has_generators(tmp_path)


def test_a_photo_read_smaller_is_pasted_at_its_own_size(tmp_path, skimage_data, capsys, monkeypatch,
                                                        one_thread):
    monkeypatch.setattr(tr, "MAX_SIDE", 256)  # the astronaut (512 px) stands in for a 50 MP photo
    photo = tmp_path / "big.jpg"
    Image.fromarray(skimage_data.astronaut()).save(photo, quality=95)
    out = tmp_path / "face.png"
    weights = write_pair(tmp_path / "run", trained_at=32)
    args = [str(photo), "--to", "black", "--out", str(out), "--weights", str(weights), "--paste"]
    assert tr.main(args) == 0
    assert "read at 256×256" in capsys.readouterr().out
    pasted = np.asarray(Image.open(tmp_path / "face_pasted.png")).astype(int)
    assert pasted.shape == (512, 512, 3)
    original = np.asarray(Image.open(photo)).astype(int)
    assert np.abs(pasted[300:] - original[300:]).max() == 0  # full resolution below the face


def test_weights_a_file_says_to_give_the_folder(tmp_path):
    folder = write_pair(tmp_path / "run")
    with pytest.raises(UserError, match="--weights .*gen_black.pth is a file: give the folder"):
        tr.pick_generators(weights=folder / "gen_black.pth")


def _train_one_iteration(domain_a, domain_b, out):
    from utils.settings import TrainConfig
    from utils.train import train

    train(TrainConfig(domain_a=domain_a, domain_b=domain_b, out=out, image_size=32, num_features=8,
                      num_residuals=1, iterations=1, sample_every=0, checkpoint_every=100, log_every=1),
          progress=False)


def test_generators_trained_on_the_built_in_faces_warn_before_a_photo(tmp_path):
    from utils.prepare import ensure_data

    files = tmp_path / "files"
    data = ensure_data("celeba", root=files, synthetic_count=12, test_count=1)
    assert not data.real
    _train_one_iteration(data.domain_A, data.domain_B, files / "demo" / "run")
    gens = tr.pick_generators(files)
    assert gens.builtin_faces and gens.label == "your generators (built-in faces)"
    assert "built-in faces" in gens.description
    warning = gens.photo_warning()
    assert "noise" in warning and "make weights" in warning and "CelebA" in warning


def test_generators_trained_on_other_images_or_published_do_not_warn(tmp_path):
    from tests.conftest import write_images

    for seed, name in enumerate(("a", "b")):
        write_images(tmp_path / name, 3, size=(36, 40), seed=seed)
    _train_one_iteration(tmp_path / "a", tmp_path / "b", tmp_path / "files")
    gens = tr.pick_generators(tmp_path / "files")
    assert not gens.builtin_faces and gens.photo_warning() is None and gens.label == "your generators"
    published = tr.pick_generators(write_pair(tmp_path / "book", shape=tr.PUBLISHED_SHAPE))
    assert published.photo_warning() is None and published.label == "the book's generators"
