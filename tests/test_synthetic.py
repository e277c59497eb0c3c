"""The built-in synthetic faces: real layouts, ground truth that is exact, determinism, safety."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from utils import synthetic
from utils.datasets import CELEBA_ATTRIBUTES
from utils.synthetic import (
    GROUND_TRUTH_DIR,
    celeba_attributes,
    glasses_train_table,
    make_celeba,
    make_glasses,
    png_bytes,
    read_marker,
    render_celeba_pair,
    render_glasses_pair,
    sample_face,
)

# the 40 names of the real list_attr_celeba.csv, in its order (copied from the chapter spec)
REAL_HEADER = (
    "5_o_Clock_Shadow, Arched_Eyebrows, Attractive, Bags_Under_Eyes, Bald, Bangs, Big_Lips, Big_Nose, "
    "Black_Hair, Blond_Hair, Blurry, Brown_Hair, Bushy_Eyebrows, Chubby, Double_Chin, Eyeglasses, Goatee, "
    "Gray_Hair, Heavy_Makeup, High_Cheekbones, Male, Mouth_Slightly_Open, Mustache, Narrow_Eyes, No_Beard, "
    "Oval_Face, Pale_Skin, Pointy_Nose, Receding_Hairline, Rosy_Cheeks, Sideburns, Smiling, Straight_Hair, "
    "Wavy_Hair, Wearing_Earrings, Wearing_Hat, Wearing_Lipstick, Wearing_Necklace, Wearing_Necktie, Young"
).split(", ")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def luminance(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def celeba(tmp_path_factory) -> Path:
    return make_celeba(tmp_path_factory.mktemp("celeba"), 24, seed=0)


@pytest.fixture(scope="module")
def glasses(tmp_path_factory) -> Path:
    return make_glasses(tmp_path_factory.mktemp("glasses"), 20, seed=0)


# ----------------------------------------------------------------------------- celeba layout
def test_celeba_images_are_the_kaggle_layout(celeba: Path) -> None:
    folder = celeba / "img_align_celeba" / "img_align_celeba"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{k:06d}.jpg" for k in range(1, 25)]  # nothing else: no ground truth inside
    with Image.open(folder / "000007.jpg") as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (178, 218))


def test_celeba_attribute_csv_has_the_real_header_and_values(celeba: Path) -> None:
    assert list(CELEBA_ATTRIBUTES) == REAL_HEADER
    first_line = (celeba / "list_attr_celeba.csv").read_text().splitlines()[0]
    assert first_line.split(",") == ["image_id", *REAL_HEADER]
    table = pd.read_csv(celeba / "list_attr_celeba.csv")
    assert table["image_id"].tolist() == [f"{k:06d}.jpg" for k in range(1, 25)]
    assert set(np.unique(table[REAL_HEADER].to_numpy())) == {-1, 1}


def test_celeba_ground_truth_layout_matches_the_truth_table(celeba: Path) -> None:
    truth = celeba / GROUND_TRUTH_DIR / "celeba"
    faces = pd.read_csv(truth / "faces.csv")
    assert faces.columns.tolist() == ["image_id", "hair", "glasses"]
    assert set(faces["hair"]) <= {"black", "blond", "brown", "gray"}
    stems = faces["image_id"].str.replace(".jpg", "", regex=False)
    swappable = faces["hair"].isin(["black", "blond"])
    assert sorted(p.stem for p in (truth / "swapped").iterdir()) == sorted(stems[swappable])
    assert sorted(p.stem for p in (truth / "mask").iterdir()) == sorted(stems)
    with Image.open(truth / "mask" / "000001.png") as mask:
        assert (mask.format, mask.mode, mask.size) == ("PNG", "L", (178, 218))
        assert set(np.unique(np.asarray(mask))) == {0, 255}
    attrs = pd.read_csv(celeba / "list_attr_celeba.csv")
    # what is drawn is what the CSV says: glasses, and the hair column of the true family
    assert ((attrs["Eyeglasses"] == 1) == (faces["glasses"] == 1)).all()
    for family, column in (("black", "Black_Hair"), ("blond", "Blond_Hair"), ("brown", "Brown_Hair")):
        assert (attrs.loc[faces["hair"] == family, column] == 1).all()
    assert read_marker(celeba, "celeba") == {"kind": "celeba", "count": 24, "seed": 0, "complete": True}


def test_on_disk_pairs_differ_little_outside_the_mask(celeba: Path) -> None:
    truth = celeba / GROUND_TRUTH_DIR / "celeba"
    for swapped_path in sorted((truth / "swapped").iterdir())[:6]:
        stem = swapped_path.stem
        original = np.asarray(Image.open(celeba / "img_align_celeba" / "img_align_celeba" / f"{stem}.jpg"))
        swapped = np.asarray(Image.open(swapped_path))
        hair = np.asarray(Image.open(truth / "mask" / f"{stem}.png")) > 0
        gap = np.abs(original.astype(int) - swapped.astype(int)).max(axis=2)
        assert gap[~hair].mean() < 2.0  # only JPEG error outside the hair
        assert gap[hair].mean() > 40  # black <-> blond inside it


# ----------------------------------------------------------------------------- glasses layout
def test_glasses_layout_and_labels(glasses: Path) -> None:
    folder = glasses / "faces-spring-2020" / "faces-spring-2020"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"face-{k}.png" for k in range(1, 21))
    with Image.open(folder / "face-3.png") as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size[0] == image.size[1] == 256
    table = pd.read_csv(glasses / "train.csv")
    assert table.columns.tolist() == ["id", *[f"v{i}" for i in range(1, 513)], "glasses"]
    assert table["id"].tolist() == list(range(1, 19))  # the first 90% are labelled
    assert set(table["glasses"]) <= {0, 1}
    truth = glasses / GROUND_TRUTH_DIR / "glasses"
    faces = pd.read_csv(truth / "faces.csv")
    assert faces.columns.tolist() == ["id", "glasses"] and faces["id"].tolist() == list(range(1, 21))
    assert 0 < faces["glasses"].sum() < 20
    expected = sorted(f"face-{k}.png" for k in range(1, 21))
    for kind in ("swapped", "mask"):
        assert sorted(p.name for p in (truth / kind).iterdir()) == expected


def test_glasses_labels_agree_with_the_truth_except_for_a_little_noise() -> None:
    params = [sample_face(0, k, "glasses") for k in range(1, 1001)]
    truth = np.array([p.glasses for p in params], dtype=int)
    assert 0.4 < truth.mean() < 0.6
    table = glasses_train_table(params, seed=0)
    assert len(table) == 900
    wrong = (table["glasses"].to_numpy() != truth[:900]).mean()
    assert 0.005 < wrong < 0.06  # like the real set's wrong labels, but fewer


# ----------------------------------------------------------------------------- ground truth
@pytest.mark.parametrize("index", range(1, 31))
def test_celeba_pair_differs_exactly_inside_the_hair_mask(index: int) -> None:
    p = sample_face(0, index)
    image, swapped, mask = render_celeba_pair(p)
    hair = np.asarray(mask) > 0
    assert hair.mean() > 0.03
    if swapped is None:
        assert p.hair in ("brown", "gray")
        return
    a, b = np.asarray(image).astype(int), np.asarray(swapped).astype(int)
    assert np.array_equal(a[~hair], b[~hair])
    assert np.abs(a - b)[hair].max() > 100


@pytest.mark.parametrize("index", range(1, 13))
def test_glasses_pair_differs_exactly_inside_the_frames_mask(index: int) -> None:
    p = sample_face(0, index, "glasses")
    image, swapped, mask = render_glasses_pair(p)
    frames = np.asarray(mask) > 0
    a, b = np.asarray(image).astype(int), np.asarray(swapped).astype(int)
    assert 0.002 < frames.mean() < 0.1
    assert np.array_equal(a[~frames], b[~frames])
    assert np.abs(a - b)[frames].max() > 30


def test_hair_families_are_separable_by_colour() -> None:
    means: dict[str, list[float]] = {"black": [], "blond": [], "brown": [], "gray": []}
    saturation: dict[str, list[float]] = {"black": [], "blond": [], "brown": [], "gray": []}
    for k in range(1, 80):
        p = sample_face(0, k)
        image, swapped, mask = render_celeba_pair(p)
        inner = np.asarray(mask.filter(ImageFilter.MinFilter(5))) > 0  # away from the edges
        pixels = np.asarray(image)[inner]
        means[p.hair].append(luminance(pixels).mean())
        saturation[p.hair].append(float((pixels.max(1).astype(int) - pixels.min(1)).mean()))
        if swapped is not None:  # the swapped render is a typical shade of the other family
            other = "blond" if p.hair == "black" else "black"
            means[other].append(luminance(np.asarray(swapped)[inner]).mean())
    assert all(len(v) >= 3 for v in means.values())
    assert max(means["black"]) < 60 < min(means["brown"])
    assert max(means["brown"]) < 120 and min(means["blond"]) > 150
    assert max(saturation["gray"]) < 10 < min(saturation["blond"])


def test_both_hair_labels_are_set_on_a_few_rows() -> None:
    params = [sample_face(0, k) for k in range(1, 1001)]
    attrs = celeba_attributes(params, seed=0)
    black = attrs[:, CELEBA_ATTRIBUTES.index("Black_Hair")] == 1
    blond = attrs[:, CELEBA_ATTRIBUTES.index("Blond_Hair")] == 1
    both = black & blond
    assert 5 <= both.sum() <= 40  # about 2%, as label noise
    hair = np.array([p.hair for p in params])
    assert set(hair[both]) == {"black", "blond"}  # noise on both families
    assert 0.38 < (hair == "black").mean() < 0.52 and 0.28 < (hair == "blond").mean() < 0.42
    smiling = attrs[:, CELEBA_ATTRIBUTES.index("Smiling")] == 1
    assert np.array_equal(smiling, [p.smiling for p in params])
    assert 0.08 < np.mean([p.glasses for p in params]) < 0.22


# ----------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path: Path) -> None:
    one = tree(make_celeba(tmp_path / "one", 8, seed=3))
    two = tree(make_celeba(tmp_path / "two", 8, seed=3))
    assert one == two
    other = tree(make_celeba(tmp_path / "other", 8, seed=4))
    jpgs = [name for name in one if name.endswith(".jpg")]
    assert all(one[name] != other[name] for name in jpgs)


def test_face_k_does_not_depend_on_count(tmp_path: Path) -> None:
    small = tree(make_celeba(tmp_path / "small", 10))
    large = tree(make_celeba(tmp_path / "large", 20))
    images = [name for name in small if name.endswith((".jpg", ".png"))]
    assert len(images) >= 20 and all(small[name] == large[name] for name in images)
    rows_small = small["list_attr_celeba.csv"].decode().splitlines()
    rows_large = large["list_attr_celeba.csv"].decode().splitlines()
    assert rows_small == rows_large[:11]

    g_small = tree(make_glasses(tmp_path / "g_small", 5))
    g_large = tree(make_glasses(tmp_path / "g_large", 10))
    assert all(g_small[name] == g_large[name] for name in g_small if name.endswith(".png"))
    assert g_small["train.csv"].decode().splitlines() == g_large["train.csv"].decode().splitlines()[:5]


def test_rerun_with_fewer_faces_removes_only_our_stale_files(tmp_path: Path) -> None:
    root = make_celeba(tmp_path / "data", 12)
    folder = root / "img_align_celeba" / "img_align_celeba"
    (folder / "notes.txt").write_text("mine")
    make_celeba(root, 10)
    assert sorted(p.name for p in folder.iterdir()) == [f"{k:06d}.jpg" for k in range(1, 11)] + ["notes.txt"]
    assert not (root / GROUND_TRUTH_DIR / "celeba" / "mask" / "000012.png").exists()
    assert len(pd.read_csv(root / "list_attr_celeba.csv")) == 10


# ----------------------------------------------------------------------------- safety
def test_refuses_to_write_over_a_real_celeba_download(tmp_path: Path) -> None:
    real = tmp_path / "files"
    real.mkdir()
    (real / "list_attr_celeba.csv").write_text("image_id,Black_Hair\n000001.jpg,1\n")
    with pytest.raises(FileExistsError, match="list_attr_celeba.csv"):
        make_celeba(real, 5)
    assert (real / "list_attr_celeba.csv").read_text() == "image_id,Black_Hair\n000001.jpg,1\n"
    assert not (real / "img_align_celeba").exists() and not (real / GROUND_TRUTH_DIR).exists()


def test_refuses_to_write_over_a_real_glasses_download(tmp_path: Path) -> None:
    (tmp_path / "faces-spring-2020" / "faces-spring-2020").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="faces-spring-2020"):
        make_glasses(tmp_path, 5)
    assert not (tmp_path / "train.csv").exists()


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="count"):
        make_celeba(tmp_path / "a", 0)
    with pytest.raises(ValueError, match="seed"):
        make_glasses(tmp_path / "b", 3, seed=-1)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="file"):
        make_celeba(tmp_path / "file", 3)


# ----------------------------------------------------------------------------- encoding and CLI
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_png_bytes_round_trips_losslessly(mode: str) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(13, 7, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    with Image.open(io.BytesIO(png_bytes(image))) as decoded:
        assert decoded.mode == mode and decoded.tobytes() == image.tobytes()


def test_cli_writes_each_layout_and_the_sheet(tmp_path: Path, capsys) -> None:
    assert synthetic.main(["celeba", "--root", str(tmp_path / "c"), "--count", "3", "--seed", "1"]) == 0
    assert (tmp_path / "c" / "img_align_celeba" / "img_align_celeba" / "000003.jpg").is_file()
    assert synthetic.main(["glasses", "--root", str(tmp_path / "g"), "--count", "3"]) == 0
    assert (tmp_path / "g" / "faces-spring-2020" / "faces-spring-2020" / "face-3.png").is_file()
    assert synthetic.main(["sheet", "--out", str(tmp_path / "docs" / "sheet.png")]) == 0
    with Image.open(tmp_path / "docs" / "sheet.png") as sheet:
        assert sheet.width > 500 and sheet.height > 400
    assert "ground truth" in capsys.readouterr().out
    capsys.readouterr()
    assert synthetic.main(["celeba", "--root", str(tmp_path / "c"), "--count", "0"]) == 2
    assert capsys.readouterr().err == "error: count must be a positive integer (--count 1 or more), got 0\n"



def test_eye_centres_are_the_pupils():
    """utils.faces is measured against these: each must sit on a drawn pupil (20, 16, 16)."""
    from utils.synthetic import eye_centres

    for index in range(1, 9):
        p = synthetic.sample_face(0, index)
        pixels = np.asarray(synthetic.render_face(p)[0]).astype(int)
        eyes = eye_centres(p)
        assert eyes[0, 0] < eyes[1, 0]  # image-left first
        for x, y in eyes:
            assert np.abs(pixels[round(y), round(x)] - (20, 16, 16)).max() < 30
