"""utils.prepare and the modules it drives (utils.datasets, utils.kaggle, utils.archive): the split
rule, safety of the download, idempotence, held-out faces, archives.

Every layout here is a tiny fixture written in a tmp folder; nothing touches the network
(kagglehub is replaced by a fake module or made unimportable).
"""

from __future__ import annotations

import os
import random
import shlex
import stat
import sys
import types
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import utils
from tests.conftest import lock_held_elsewhere
from utils import datasets, kaggle, prepare
from utils.archive import UnsafeArchiveError, in_place_message, safe_extract, unpack
from utils.datasets import CELEBA_ATTRIBUTES, DataLayoutError
from utils.kaggle import DownloadError
from utils.prepare import (
    CSVFormatError,
    ensure_data,
    read_corrections,
    split_celeba,
    split_glasses,
)

# the first bytes of a JPEG and a PNG: enough for the split's cheap check that a file is an image
JPEG, PNG = b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n"

# known numbers of each kind of row: the rule must give black = 7 + 3, blond = 5
ROWS = ["black"] * 7 + ["blond"] * 5 + ["both"] * 3 + ["neither"] * 4


def write_celeba(root: Path, kinds: list[str] = ROWS) -> dict[str, list[str]]:
    """A Kaggle-layout CelebA in `root` (rows shuffled by kind); returns the expected split."""
    images = root / "img_align_celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    rows, expected = [], {"black": [], "blond": []}
    order = list(kinds)
    random.Random(0).shuffle(order)  # the kinds interleaved, as in the real CSV
    for k, kind in enumerate(order, start=1):
        name = f"{k:06d}.jpg"
        row = dict.fromkeys(CELEBA_ATTRIBUTES, -1)
        row["Black_Hair"] = 1 if kind in ("black", "both") else -1
        row["Blond_Hair"] = 1 if kind in ("blond", "both") else -1
        rows.append({"image_id": name, **row})
        (images / name).write_bytes(JPEG + f"face {k}".encode())
        if kind in ("black", "both"):
            expected["black"].append(name)
        elif kind == "blond":
            expected["blond"].append(name)
    pd.DataFrame(rows).to_csv(root / "list_attr_celeba.csv", index=False)
    (root / "list_bbox_celeba.csv").write_text("image_id,x_1\n000001.jpg,1\n")  # an extra Kaggle CSV
    return expected


def write_glasses(root: Path, labels: dict[int, int], unlabelled: range = range(0)) -> None:
    images = root / "faces-spring-2020" / "faces-spring-2020"
    images.mkdir(parents=True)
    for i in [*labels, *unlabelled]:
        (images / f"face-{i}.png").write_bytes(PNG + f"png {i}".encode())
    frame = pd.DataFrame({"id": list(labels), "v1": 0.5, "v2": -0.1, "glasses": list(labels.values())})
    frame.to_csv(root / "train.csv", index=False)


def names(folder: Path) -> list[str]:
    """The visible entries of `folder` (the split's hidden records beside its folders are not faces)."""
    return sorted(n for n in os.listdir(folder) if not n.startswith(".")) if folder.is_dir() else []


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """name -> (inode, bytes) of every file: proves the download is untouched."""
    return {p.name: (p.stat().st_ino, p.read_bytes()) for p in folder.iterdir()}


@pytest.fixture
def celeba(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path / "files"
    return root, write_celeba(root)


# --------------------------------------------------------------------------- the rule
def test_counts_follow_the_chapter_rule_black_wins_when_both(celeba, capsys):
    root, expected = celeba
    report = split_celeba(root)
    assert report.counts == {"black": 10, "blond": 5}
    assert names(root / "black") == expected["black"]
    assert names(root / "blond") == expected["blond"]
    both = [n for n in expected["black"] if n in expected["blond"]]
    assert both == []  # a face with both flags is black only
    assert report.linked == 15 and report.copied == report.moved == report.missing == 0
    assert not (root / "test").exists()
    assert "10 black, 5 blond" in capsys.readouterr().out


def test_selection_is_vectorised_rule_on_any_frame():
    frame = pd.DataFrame({"image_id": ["3.jpg", "1.jpg", "2.jpg", "4.jpg"],
                          "Black_Hair": [1, 1, -1, -1], "Blond_Hair": [1, -1, 1, -1]})
    assert prepare.select_celeba(frame) == {"black": ["1.jpg", "3.jpg"], "blond": ["2.jpg"]}


def test_rerun_skips_everything_and_keeps_the_folders(celeba):
    root, _ = celeba
    split_celeba(root, test_count=2)
    before = {d: snapshot(root / d) for d in ("black", "blond", "test/black", "test/blond")}
    again = split_celeba(root, test_count=2)
    assert (again.linked, again.copied, again.moved, again.removed) == (0, 0, 0, 0)
    assert again.skipped == 15
    assert {d: snapshot(root / d) for d in before} == before


def test_source_download_left_intact(celeba):
    root, expected = celeba
    images = root / "img_align_celeba" / "img_align_celeba"
    csv_bytes = (root / "list_attr_celeba.csv").read_bytes()
    before = snapshot(images)
    split_celeba(root, test_count=1)
    assert snapshot(images) == before
    assert (root / "list_attr_celeba.csv").read_bytes() == csv_bytes
    # hard links: the split costs no disk and shares the source's inode
    linked = root / "black" / expected["black"][0]
    assert linked.stat().st_ino == (images / linked.name).stat().st_ino
    assert (images / linked.name).stat().st_nlink == 2


def test_copy_fallback_when_links_fail(celeba, monkeypatch):
    root, expected = celeba
    images = root / "img_align_celeba" / "img_align_celeba"
    before = snapshot(images)

    def no_links(src, dst):
        raise OSError(1, "Operation not permitted (FAT drive)")

    monkeypatch.setattr(datasets.os, "link", no_links)
    report = split_celeba(root)
    assert report.copied == 15 and report.linked == 0
    assert snapshot(images) == before
    copy = root / "blond" / expected["blond"][0]
    assert copy.read_bytes() == (images / copy.name).read_bytes()
    assert not [p for p in root.rglob("*") if p.name.endswith(datasets.TMP_SUFFIX)]


def test_move_only_when_asked(celeba):
    root, expected = celeba
    images = root / "img_align_celeba" / "img_align_celeba"
    content = {n: (images / n).read_bytes() for n in expected["black"]}
    report = split_celeba(root, move=True)
    assert report.moved == 15 and report.linked == 0
    assert not any((images / n).exists() for n in expected["black"] + expected["blond"])
    assert {n: (root / "black" / n).read_bytes() for n in expected["black"]} == content
    assert len(names(images)) == 4  # the "neither" faces stay
    assert split_celeba(root, move=True).skipped == 15  # re-runnable, unlike listing 6.1


def test_missing_images_are_counted_and_named(celeba, capsys):
    root, expected = celeba
    images = root / "img_align_celeba" / "img_align_celeba"
    gone = [expected["black"][1], expected["blond"][0]]
    for name in gone:
        (images / name).unlink()
    report = split_celeba(root)
    assert report.missing == 2 and sorted(report.missing_examples) == sorted(gone)
    assert report.linked == 13
    out = capsys.readouterr().out
    assert "WARNING: 2 image(s)" in out and gone[0] in out


def test_junk_in_the_image_folder_is_ignored(celeba):
    root, expected = celeba
    images = root / "img_align_celeba" / "img_align_celeba"
    for junk in (".DS_Store", "notes.txt", "999999.jpg", "._000001.jpg"):
        (images / junk).write_bytes(b"junk")
    (images / "subfolder").mkdir()
    split_celeba(root)
    assert names(root / "black") == expected["black"]
    assert names(root / "blond") == expected["blond"]


# --------------------------------------------------------------------------- a reader's files
MINE = b"\xff\xd8\xff\xe0 the reader's own photo, not a CelebA face"


def _record(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.ch06-split.json"


def test_a_readers_file_named_like_a_face_of_the_other_colour_is_left_alone(celeba, capsys):
    root, expected = celeba
    split_celeba(root)
    mine = root / "black" / expected["blond"][0]  # a blond face's name, saved in black/
    mine.write_bytes(MINE)
    capsys.readouterr()
    report = split_celeba(root)
    assert mine.read_bytes() == MINE  # the name-only split deleted it as "stale"
    out = capsys.readouterr().out
    assert f"{root / 'black'} holds 1 file(s) this split did not place ({mine.name})" in out
    assert "left untouched" in out and "move them to a folder of your own" in out
    assert report.foreign[root / "black"] == [mine.name] and report.removed == 0
    assert (root / "blond" / mine.name).read_bytes() != MINE  # the blond face is still linked in blond/


def test_a_readers_file_saved_over_a_placed_face_is_kept_and_reported(celeba, capsys):
    root, expected = celeba
    split_celeba(root, test_count=1)
    name = expected["black"][0]
    mine = root / "black" / name
    tmp = root / "black" / "drawing.tmp"
    tmp.write_bytes(MINE)
    os.replace(tmp, mine)  # how editors and PIL's save-and-rename put a file in place
    download = (root / "img_align_celeba" / "img_align_celeba" / name).read_bytes()
    capsys.readouterr()
    report = split_celeba(root, test_count=3)  # the reader also changes the held-out count
    assert mine.read_bytes() == MINE
    assert (root / "img_align_celeba" / "img_align_celeba" / name).read_bytes() == download
    out = capsys.readouterr().out
    assert "1 of them have the name of a face the rule puts there, which was therefore not placed" in out
    assert report.blocked[root / "black"] == [name]
    # the summary counts what is there: 7 of the 10 - 3 black training faces are the split's own
    assert report.in_place == {"black": 6, "blond": 2}
    assert f"{root / 'black'} (6 of 7)" in out


def test_a_readers_folder_split_into_for_the_first_time(celeba, capsys):
    root, expected = celeba
    neither = sorted(set(names(root / "img_align_celeba" / "img_align_celeba"))
                     - set(expected["black"]) - set(expected["blond"]))[0]
    own = {expected["black"][0]: MINE, expected["blond"][1]: MINE + b"2", neither: MINE + b"3",
           "me.jpg": MINE + b"4"}
    (root / "black").mkdir()
    for name, data in own.items():
        (root / "black" / name).write_bytes(data)
    report = split_celeba(root)
    assert {n: (root / "black" / n).read_bytes() for n in own} == own
    assert sorted(report.foreign[root / "black"]) == sorted(own)
    assert report.placed[root / "black"] == 9 and report.linked == 14
    assert "holds 4 file(s) this split did not place" in capsys.readouterr().out


def test_move_never_moves_a_readers_file_into_the_download(celeba):
    root, expected = celeba
    images = root / "img_align_celeba" / "img_align_celeba"
    split_celeba(root, move=True)
    mine = root / "black" / expected["blond"][0]  # that face itself sits in blond/, moved there
    mine.write_bytes(MINE)
    report = split_celeba(root, move=True)
    assert mine.read_bytes() == MINE and not (images / mine.name).exists()
    assert report.restored == 0 and report.foreign[root / "black"] == [mine.name]


def test_a_readers_held_out_folder_survives_test_count_zero(celeba):
    root, expected = celeba
    own = root / "test" / "black"
    own.mkdir(parents=True)
    for name in expected["black"][:3]:
        (own / name).write_bytes(MINE)
    split_celeba(root, test_count=0)
    assert [(own / n).read_bytes() for n in expected["black"][:3]] == [MINE] * 3


def test_an_edited_placed_face_is_not_removed_when_it_leaves_a_folder(celeba):
    root, expected = celeba
    images = root / "img_align_celeba" / "img_align_celeba"
    for path in images.iterdir():
        os.utime(path, (1e9, 1e9))  # a download from long ago
    split_celeba(root, test_count=1)
    edited = root / "test" / "blond" / expected["blond"][-1]
    with open(edited, "r+b") as handle:  # edited in place (a hard link: the download changes too)
        handle.write(MINE)
    report = split_celeba(root, test_count=0)
    assert edited.read_bytes().startswith(MINE)
    assert report.foreign[root / "test" / "blond"] == [edited.name]


def test_the_split_knows_its_copies_and_an_interrupted_run(celeba, monkeypatch, capsys):
    root, _ = celeba
    real_link = datasets.os.link
    monkeypatch.setattr(datasets.os, "link", lambda src, dst: (_ for _ in ()).throw(OSError(1, "FAT")))
    split_celeba(root)  # copies: inodes of their own, recorded after copying
    calls = []

    def link_then_stop(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_link(src, dst)

    monkeypatch.setattr(datasets.os, "link", link_then_stop)
    with pytest.raises(KeyboardInterrupt):
        split_celeba(root, test_count=2)
    monkeypatch.setattr(datasets.os, "link", real_link)
    capsys.readouterr()
    again = split_celeba(root, test_count=2)
    assert "did not place" not in capsys.readouterr().out
    assert not any(again.foreign.values())
    assert again.in_place == again.train_counts == {"black": 8, "blond": 3}


def test_a_folder_split_by_an_older_version_is_recognised_by_its_links(celeba, capsys):
    root, expected = celeba
    split_celeba(root)
    _record(root / "black").unlink()
    _record(root / "blond").write_text("{not json")  # a damaged record vouches for nothing
    mine = root / "black" / expected["blond"][0]
    mine.write_bytes(MINE)
    capsys.readouterr()
    again = split_celeba(root)
    assert again.skipped == 15 and again.removed == 0 and mine.read_bytes() == MINE
    assert again.foreign[root / "black"] == [mine.name] and not again.foreign[root / "blond"]
    assert _record(root / "black").is_file()


def test_empty_and_non_image_files_are_named_and_left_out(celeba, capsys):
    root, expected = celeba
    images = root / "img_align_celeba" / "img_align_celeba"
    empty, html = expected["black"][2], expected["blond"][1]
    (images / empty).write_bytes(b"")
    (images / html).write_bytes(b"<!DOCTYPE html><html>Too many requests</html>")
    report = split_celeba(root)
    assert empty not in names(root / "black") and html not in names(root / "blond")
    assert report.unreadable == 2 and report.in_place == {"black": 9, "blond": 4}
    out = capsys.readouterr().out
    assert f"{empty} (empty: 0 bytes)" in out and f"{html} (not an image: it starts with b'<!DOCTYPE" in out
    assert "left out of the split" in out and f"{root / 'black'} (9 of 10)" in out


def test_glasses_pngs_that_are_not_images_are_left_out(tmp_path):
    write_glasses(tmp_path, LABELS)
    (tmp_path / "faces-spring-2020" / "faces-spring-2020" / "face-3.png").write_bytes(b"oops")
    report = split_glasses(tmp_path)
    assert names(tmp_path / "glasses" / "G") == ["face-1.png", "face-6.png"]
    assert report.unreadable_examples == ["face-3.png (not an image: it starts with b'oops')"]


@pytest.mark.parametrize("argv, message", [
    (["--test-count", "-1"], "--test-count (test_count) must be 0 or more, got -1"),
    (["--test-count", "10"],
     "would hold out every 'blond' face (the rule selects only 5); choose a smaller test_count (at most 4)"),
    (["--corrections", "x.txt"], "--corrections applies to the glasses split only"),
])
def test_cli_mistakes_are_one_line_and_exit_2(celeba, capsys, monkeypatch, argv, message):
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    root, _ = celeba
    assert prepare.main(["split", "celeba", "--root", str(root), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (root / "black").exists()


def test_a_file_where_a_split_folder_belongs_is_refused(celeba):
    root, _ = celeba
    (root / "blond").write_bytes(MINE)
    with pytest.raises(DataLayoutError, match="is a file.*Nothing was changed"):
        split_celeba(root)
    assert (root / "blond").read_bytes() == MINE and not (root / "black").exists()


# --------------------------------------------------------------------------- bad input
def _csv(root: Path) -> Path:
    return root / "list_attr_celeba.csv"


def test_csv_without_needed_columns_names_them_and_the_file(celeba):
    root, _ = celeba
    pd.read_csv(_csv(root)).drop(columns=["Blond_Hair"]).to_csv(_csv(root), index=False)
    with pytest.raises(CSVFormatError, match=r"lacks the column\(s\) \['Blond_Hair'\]") as err:
        split_celeba(root)
    assert str(_csv(root)) in str(err.value)
    assert not (root / "black").exists()


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"image_id,Black_Hair,Blond_Hair\n", "no rows"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd\x00\x81\x82", "not a readable CSV"),
    (b"image_id,Black_Hair,Blond_Hair\n000001.jpg,yes,-1\n", "must hold only"),
    (b"image_id,Black_Hair,Blond_Hair\n../../etc/passwd,1,-1\n", "path-like"),
])
def test_bad_csvs_are_rejected_clearly(celeba, content, message):
    root, _ = celeba
    _csv(root).write_bytes(content)
    with pytest.raises(CSVFormatError, match=message):
        split_celeba(root)
    assert not (root / "black").exists()


def test_missing_csv_or_images_says_how_to_get_them(tmp_path):
    with pytest.raises(DataLayoutError, match="python -m utils.prepare download celeba") as err:
        split_celeba(tmp_path)
    assert "kaggle.com/datasets/jessicali9530/celeba-dataset" in str(err.value)
    write_celeba(tmp_path / "r")
    os.rename(tmp_path / "r" / "img_align_celeba", tmp_path / "r" / "elsewhere")
    with pytest.raises(DataLayoutError, match="image folder .* is missing"):
        split_celeba(tmp_path / "r")


def test_every_printed_command_keeps_a_folder_with_a_space_in_one_argument(tmp_path, capsys):
    """A reader pastes the commands we print: `--root /x/My Course/files` unquoted would be two
    arguments. The missing-data error, the manual steps and the unpack's "Next:" line."""
    root = tmp_path / "My Course" / "files"
    root.mkdir(parents=True)
    assert prepare.main(["split", "celeba", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    fix = err.split("Fix: ", 1)[1].split(", or get it", 1)[0]
    assert shlex.split(fix) == ["python", "-m", "utils.prepare", "download", "celeba", "--root", str(root)]
    unpack_line = next(line for line in err.splitlines() if "utils.prepare unpack" in line)
    assert shlex.split(unpack_line)[-2:] == ["--root", str(root)]
    download_line = next(line for line in err.splitlines() if line.startswith("To let `"))
    assert shlex.split(download_line.split("`")[1])[-2:] == ["--root", str(root)]
    write_celeba(root)
    next_line = in_place_message(datasets.dataset_spec("celeba"), root).splitlines()[-1]
    assert shlex.split(next_line.removeprefix("Next: "))[-2:] == ["--root", str(root)]


def test_cli_reports_errors_with_exit_status(tmp_path, capsys):
    assert prepare.main(["split", "celeba", "--root", str(tmp_path)]) == 2
    assert "list_attr_celeba.csv is missing" in capsys.readouterr().err
    write_celeba(tmp_path / "ok")
    assert prepare.main(["split", "celeba", "--root", str(tmp_path / "ok"), "--test-count", "1"]) == 0
    assert names(tmp_path / "ok" / "test" / "blond")


# --------------------------------------------------------------------------- held out
def test_held_out_faces_are_the_last_by_id_and_never_trained_on(celeba):
    root, expected = celeba
    report = split_celeba(root, test_count=2)
    for domain in ("black", "blond"):
        train, test = names(root / domain), names(root / "test" / domain)
        assert test == expected[domain][-2:]
        assert train == expected[domain][:-2]
        assert not set(train) & set(test)
    assert report.test_counts == {"black": 2, "blond": 2}
    assert report.train_counts == {"black": 8, "blond": 3}


@pytest.mark.parametrize("move", [False, True])
def test_changing_test_count_keeps_folders_consistent(celeba, move):
    root, expected = celeba
    images = root / "img_align_celeba" / "img_align_celeba"
    everything = {p.name: p.read_bytes() for p in images.iterdir()}
    for test_count in (2, 4, 1, 0, 3):
        split_celeba(root, test_count=test_count, move=move)
        for domain in ("black", "blond"):
            train, test = set(names(root / domain)), set(names(root / "test" / domain))
            assert not train & test
            assert sorted(test) == (expected[domain][-test_count:] if test_count else [])
            assert train | test == set(expected[domain])
    # nothing lost, whether linked or moved: every face is in the download or a split folder
    found = {p.name: p.read_bytes() for p in root.rglob("*.jpg")}
    assert found.keys() == everything.keys() and all(found[n] == everything[n] for n in found)


def test_test_count_larger_than_a_domain_is_refused(celeba):
    root, _ = celeba
    with pytest.raises(ValueError, match="smaller test_count"):
        split_celeba(root, test_count=5)  # blond has only 5
    assert not (root / "black").exists()


# --------------------------------------------------------------------------- glasses
LABELS = {1: 1, 2: 0, 3: 1, 4: 0, 5: 0, 6: 1, 7: 0, 8: 0}


def test_glasses_split_skips_unlabelled_ids(tmp_path):
    write_glasses(tmp_path, LABELS, unlabelled=range(9, 12))
    report = split_glasses(tmp_path)
    assert names(tmp_path / "glasses" / "G") == ["face-1.png", "face-3.png", "face-6.png"]
    assert names(tmp_path / "glasses" / "NoG") == sorted(f"face-{i}.png" for i in (2, 4, 5, 7, 8))
    assert report.counts == {"G": 3, "NoG": 5}
    assert report.missing == 0  # face-9..11 have no label: not split, not "missing"


def test_glasses_corrections_flip_labels_and_move_stale_links(tmp_path):
    write_glasses(tmp_path, LABELS)
    split_glasses(tmp_path, test_count=1)
    fixes = tmp_path / "fixes.txt"
    fixes.write_text("id\n# wrong labels found by eye\n1\nface-2\nface-4.png  # a comment\n\n1\n")
    assert read_corrections(fixes) == {1, 2, 4}
    report = split_glasses(tmp_path, corrections=fixes, test_count=1)
    g, nog = tmp_path / "glasses", tmp_path / "glasses"
    assert names(g / "G") + names(g / "test" / "G") == ["face-2.png", "face-3.png", "face-4.png",
                                                      "face-6.png"]
    assert names(nog / "test" / "NoG") == ["face-8.png"]
    assert "face-1.png" in names(nog / "NoG")
    assert report.flipped == 3 and report.counts == {"G": 4, "NoG": 4}
    every = [n for d in ("G", "NoG", "test/G", "test/NoG") for n in names(g / d)]
    assert len(every) == len(set(every)) == 8  # no face in two folders
    assert report.removed > 0


def test_bad_corrections_are_named(tmp_path):
    write_glasses(tmp_path, LABELS)
    bad = tmp_path / "bad.csv"
    bad.write_text("id\n3\nface-x\n")
    with pytest.raises(ValueError, match=r"line 3: 'face-x'"):
        split_glasses(tmp_path, corrections=bad)
    bad.write_text("3\n42\n")
    with pytest.raises(ValueError, match=r"no label .*\[42\]"):
        split_glasses(tmp_path, corrections=bad)
    assert prepare.main(["split", "glasses", "--root", str(tmp_path), "--corrections", str(bad)]) == 2


# --------------------------------------------------------------------------- download
@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-config"))
    monkeypatch.setitem(sys.modules, "google.colab", None)


def fake_kagglehub(monkeypatch, dataset_download) -> list[str]:
    calls: list[str] = []

    def download(handle, *args, **kwargs):
        calls.append(handle)
        return dataset_download(handle)

    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=download))
    return calls


def test_download_without_credentials_prints_the_manual_steps(tmp_path, no_credentials, monkeypatch,
                                                               capsys):
    calls = fake_kagglehub(monkeypatch, lambda h: pytest.fail("must not download"))
    root = tmp_path / "files"
    root.mkdir()
    assert prepare.main(["download", "celeba", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "No Kaggle credentials" in err
    assert "https://www.kaggle.com/datasets/jessicali9530/celeba-dataset" in err
    assert "img_align_celeba/" in err and "unpack" in err
    # the steps keep their lines (a tree squeezed into one line is unreadable); the error is one line, last
    assert "\n         img_align_celeba/\n           img_align_celeba/\n" in err
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith("error: No Kaggle credentials") and last.endswith("(steps above).")
    assert calls == [] and list(root.iterdir()) == []


def test_download_offline_fails_cleanly_without_leaking_the_key(tmp_path, no_credentials, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "reader")
    monkeypatch.setenv("KAGGLE_KEY", "s3cr3t-key-0123456789")

    def offline(handle):
        raise ConnectionError(f"Max retries for https://reader:s3cr3t-key-0123456789@kaggle.com/{handle}")

    fake_kagglehub(monkeypatch, offline)
    root = tmp_path / "files"
    with pytest.raises(DownloadError) as err:
        kaggle.download("glasses", root)
    assert "s3cr3t" not in str(err.value) and "ConnectionError" in str(err.value)
    assert "jeffheaton/glasses-or-no-glasses" in str(err.value)
    assert not root.exists() or list(root.iterdir()) == []


def test_download_without_kagglehub_installed(tmp_path, no_credentials, monkeypatch):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "token-not-printed")
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # the import fails
    with pytest.raises(DownloadError, match="pip install kagglehub") as err:
        kaggle.download("celeba", tmp_path / "files")
    assert "token-not-printed" not in str(err.value)


def test_download_lays_out_the_cache_and_leaves_it_intact(tmp_path, no_credentials, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "cfg"))
    cache = tmp_path / "kagglehub-cache" / "versions" / "2"
    expected = write_celeba(cache)
    before = snapshot(cache / "img_align_celeba" / "img_align_celeba")
    calls = fake_kagglehub(monkeypatch, lambda handle: str(cache))
    root = tmp_path / "files"
    kaggle.download("celeba", root)
    assert calls == ["jessicali9530/celeba-dataset"]
    assert datasets.layout_problems("celeba", root) == []
    assert sorted(os.listdir(root)) == ["img_align_celeba", "list_attr_celeba.csv"]  # no staging left
    assert snapshot(cache / "img_align_celeba" / "img_align_celeba") == before
    assert split_celeba(root).counts == {"black": len(expected["black"]), "blond": len(expected["blond"])}
    kaggle.download("celeba", root)  # already there: no second download
    assert len(calls) == 1


def test_download_of_an_incomplete_data_set_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "t")
    cache = tmp_path / "cache"
    write_glasses(cache, LABELS)
    (cache / "faces-spring-2020" / "faces-spring-2020").rename(cache / "faces-spring-2020" / "other")
    fake_kagglehub(monkeypatch, lambda handle: str(cache))
    root = tmp_path / "files"
    with pytest.raises(DataLayoutError, match="expected layout"):
        kaggle.download("glasses", root)
    assert list(root.iterdir()) == []


# --------------------------------------------------------------------------- archives
def make_zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize("bad, reason", [
    ("../evil.txt", "'..'"), ("ok/../../evil.txt", "'..'"), ("..\\evil.txt", "'..'"),
    ("ok/../inside.txt", "'..'"),  # stays inside, but no honest archive needs it
    ("/abs/evil.txt", "absolute path"), ("C:\\evil.txt", "absolute path"),
])
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, bad, reason):
    archive = make_zip(tmp_path / "a.zip", {"fine.txt": b"x", bad: b"evil"})
    target = tmp_path / "out" / "target"
    with pytest.raises(UnsafeArchiveError, match=f"{reason}.*nothing was extracted"):
        safe_extract(archive, target)
    assert not target.exists() and not (tmp_path / "out" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_members_are_refused(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"fine.txt": b"x"}, symlink="link")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract(archive, tmp_path / "t")


def test_unpack_a_browser_download_into_the_layout(tmp_path, capsys):
    source = tmp_path / "src"
    expected = write_celeba(source)
    members = {p.relative_to(source).as_posix(): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    archive = make_zip(tmp_path / "archive.zip", members)
    root = tmp_path / "files"
    assert prepare.main(["unpack", str(archive), "--root", str(root)]) == 0
    assert "CelebA is in place" in capsys.readouterr().out
    assert sorted(os.listdir(root)) == ["img_align_celeba", "list_attr_celeba.csv"]
    assert split_celeba(root).counts["black"] == len(expected["black"])
    # a bad zip: clear error, nothing half-written in root
    bad = make_zip(tmp_path / "bad.zip", {"train.csv": b"id,glasses\n1,1\n", "../x": b""})
    assert prepare.main(["unpack", str(bad), "--root", str(root)]) == 2
    left = sorted(n for n in os.listdir(root) if not n.endswith(".ch06-split.json"))  # no staging folder
    assert left == ["black", "blond", "img_align_celeba", "list_attr_celeba.csv"]


def test_unpack_refuses_to_overwrite_a_partial_layout(tmp_path):
    source = tmp_path / "src"
    write_glasses(source, LABELS)
    members = {p.relative_to(source).as_posix(): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    archive = make_zip(tmp_path / "archive.zip", members)
    root = tmp_path / "files"
    (root / "faces-spring-2020").mkdir(parents=True)
    (root / "faces-spring-2020" / "mine.png").write_bytes(b"reader's file")
    with pytest.raises(DataLayoutError, match="Nothing was changed"):
        unpack(archive, root)
    assert sorted(os.listdir(root)) == ["faces-spring-2020"]
    assert (root / "faces-spring-2020" / "mine.png").read_bytes() == b"reader's file"


# --------------------------------------------------------------------------- ensure_data
def test_ensure_data_uses_the_real_download(celeba, capsys, monkeypatch):
    root, expected = celeba
    monkeypatch.setitem(sys.modules, "utils.synthetic", None)  # must not be needed
    choice = ensure_data("celeba", root, test_count=1)
    assert choice.real and choice.truth is None and choice.root == root
    assert (choice.domain_A, choice.domain_B) == (root / "black", root / "blond")
    assert names(choice.test_A) == expected["black"][-1:]
    assert names(choice.test_B) == expected["blond"][-1:]
    assert "Using the real CelebA download" in capsys.readouterr().out


def _fake_synthetic(monkeypatch) -> list[Path]:
    """A stand-in generator with the agreed API, to test the marker logic on its own."""
    calls: list[Path] = []

    def make_celeba(root, count, seed=0):
        calls.append(Path(root))
        kinds = (["black", "blond", "both", "neither"] * count)[:count]
        write_celeba(Path(root), kinds)
        (Path(root) / "ground_truth" / "celeba").mkdir(parents=True)
        return Path(root)

    module = types.SimpleNamespace(make_celeba=make_celeba, make_glasses=None)
    monkeypatch.setitem(sys.modules, "utils.synthetic", module)
    monkeypatch.setattr(utils, "synthetic", module, raising=False)
    return calls


def test_ensure_data_falls_back_to_synthetic_once(tmp_path, capsys, monkeypatch):
    calls = _fake_synthetic(monkeypatch)
    choice = ensure_data("celeba", tmp_path, synthetic_count=12, test_count=2)
    out = capsys.readouterr().out
    assert "Using the built-in synthetic faces in" in out and "no CelebA download found" in out
    assert not choice.real and choice.root == tmp_path / "synthetic"
    assert choice.domain_A == tmp_path / "synthetic" / "black"
    assert choice.truth == tmp_path / "synthetic" / "ground_truth" / "celeba"
    assert len(names(choice.domain_A)) == 6 - 2 and len(names(choice.test_B)) == 2
    ensure_data("celeba", tmp_path, synthetic_count=12, test_count=2)
    assert len(calls) == 1  # complete generation reused
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic"]  # no staging folders left
    (tmp_path / "synthetic" / prepare.SYNTHETIC_MARKER).unlink()  # as after a crash mid-generation
    ensure_data("celeba", tmp_path, synthetic_count=12, test_count=2)
    assert len(calls) == 2


def test_ensure_data_with_the_real_synthetic_module(tmp_path):
    pytest.importorskip("utils.synthetic")
    choice = ensure_data("celeba", tmp_path, synthetic_count=40, test_count=1)
    assert not choice.real
    assert names(choice.domain_A) and names(choice.domain_B) and choice.truth.is_dir()
    glasses = ensure_data("glasses", tmp_path, synthetic_count=40, test_count=1)
    assert glasses.domain_A == tmp_path / "synthetic_glasses" / "glasses" / "G"
    assert names(glasses.domain_A) and names(glasses.domain_B) and names(glasses.test_B)


@pytest.mark.parametrize("content, message", [
    (None, "does not exist: check the path of the zip you downloaded"),
    (b"<!DOCTYPE html><html>Sign in</html>", "is not a readable zip file (File is not a zip file): an "),
])
def test_unpack_of_a_missing_or_non_zip_file_is_one_line(tmp_path, capsys, monkeypatch, content, message):
    monkeypatch.delenv("CH06_DEBUG", raising=False)
    archive = tmp_path / "archive.zip"
    if content is not None:
        archive.write_bytes(content)
    root = tmp_path / "files"
    assert prepare.main(["unpack", str(archive), "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {archive}") and message in err and err.count("\n") == 1
    assert not root.exists() or list(root.iterdir()) == []


@pytest.mark.parametrize("module", ["utils.kaggle", "utils.archive"])
def test_modules_without_a_command_line_name_the_one_to_use(module):
    import subprocess

    done = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert done.returncode == 2 and "python -m utils.prepare" in done.stderr


def test_regenerating_the_builtin_faces_never_deletes_a_readers_files(tmp_path, monkeypatch):
    calls = _fake_synthetic(monkeypatch)
    ensure_data("celeba", tmp_path, synthetic_count=12, test_count=2)
    mine = tmp_path / "synthetic" / "black" / "me.jpg"  # a photo added to the training faces
    mine.write_bytes(MINE)
    (tmp_path / "synthetic" / "blond" / ".DS_Store").write_bytes(b"junk")  # nobody's work
    with pytest.raises(prepare.UserError, match=r"holds 1 file\(s\) that neither .*black/me.jpg.*Nothing"):
        ensure_data("celeba", tmp_path, synthetic_count=16, test_count=2)  # another count: regenerate
    assert mine.read_bytes() == MINE and len(calls) == 1
    mine.unlink()
    (tmp_path / "synthetic" / ".black.ch06-split.json").unlink()  # as split by an older version
    ensure_data("celeba", tmp_path, synthetic_count=16, test_count=2)
    assert len(calls) == 2 and len(names(tmp_path / "synthetic" / "black")) == 8 - 2


# --------------------------------------------------------------------------- issue 22: CSV ids, locks, zips
def _rewrite_csv(root: Path, change) -> None:
    frame = pd.read_csv(root / "list_attr_celeba.csv", dtype={"image_id": str})
    change(frame).to_csv(root / "list_attr_celeba.csv", index=False)


def test_an_id_listed_twice_is_refused_naming_its_lines_and_nothing_is_placed(celeba, capsys):
    root, expected = celeba

    def twice(frame):  # the same face once as black, once as blond
        extra = frame[frame["image_id"] == expected["black"][0]].assign(Black_Hair=-1, Blond_Hair=1)
        return pd.concat([frame, extra], ignore_index=True)

    _rewrite_csv(root, twice)
    assert prepare.main(["split", "celeba", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"image_id '{expected['black'][0]}' is listed 2 times (lines " in err and "listed once" in err
    assert not (root / "black").exists() and not (root / "blond").exists()


def test_ids_without_jpg_are_named_not_called_an_incomplete_download(celeba, capsys):
    root, _ = celeba
    _rewrite_csv(root, lambda f: f.assign(image_id=f["image_id"].str.removesuffix(".jpg")))
    assert prepare.main(["split", "celeba", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "19 image_id value(s) are not file names (e.g. '" in err and "'000001.jpg'" in err
    assert "re-saved by a spreadsheet" in err and "incomplete" not in err
    assert not (root / "black").exists()


def test_a_split_while_another_process_splits_the_same_folder_is_refused(celeba, capsys):
    root, _ = celeba
    with lock_held_elsewhere(root, "data") as holder:
        assert prepare.main(["split", "celeba", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{root} is in use by process {holder.pid} (python -c " in err and "run this split again" in err
    assert not (root / "black").exists() and not list(root.glob(".*.ch06-split.json"))
    assert split_celeba(root).counts["black"] == 10  # and afterwards it works


def test_ensure_data_refuses_while_another_process_holds_the_builtin_faces(tmp_path, monkeypatch):
    _fake_synthetic(monkeypatch)
    with lock_held_elsewhere(tmp_path / "synthetic", "data") as holder:
        with pytest.raises(prepare.UserError, match=rf"in use by process {holder.pid} "):
            ensure_data("celeba", tmp_path, synthetic_count=12, test_count=2)
        assert names(tmp_path / "synthetic") == []  # nothing generated under the other's feet


def test_unpack_while_another_process_writes_the_data_folder_is_refused(tmp_path, capsys):
    source = tmp_path / "src"
    write_celeba(source)
    members = {p.relative_to(source).as_posix(): p.read_bytes() for p in source.rglob("*") if p.is_file()}
    archive = make_zip(tmp_path / "archive.zip", members)
    root = tmp_path / "files"
    with lock_held_elsewhere(root, "data") as holder:
        assert prepare.main(["unpack", str(archive), "--root", str(root)]) == 2
    assert f"in use by process {holder.pid} " in capsys.readouterr().err
    assert not root.exists()  # the holder made it for its lock; nothing was unpacked into it


def test_two_splits_at_once_leave_one_consistent_split(celeba):
    """Two real processes split one folder at the same moment: one may be refused, none corrupts
    the record (a third split then finds every face its own, nothing foreign)."""
    import subprocess

    root, expected = celeba
    command = [sys.executable, "-m", "utils.prepare", "split", "celeba", "--root", str(root),
               "--test-count", "2"]
    procs = [subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for proc in procs:
        proc.stdout.close()
        proc.stderr.close()
    assert all(code == 0 or (code == 2 and "is in use by process" in err) for code, err in results), results
    assert any(code == 0 for code, _ in results)
    again = split_celeba(root, test_count=2)
    assert not any(again.foreign.values()) and again.linked == 0 and again.skipped == 15
    assert names(root / "black") == expected["black"][:-2]


def test_unpack_a_zip_inside_the_zip_says_so(tmp_path, capsys):
    inner = make_zip(tmp_path / "archive.zip", {"list_attr_celeba.csv": b"image_id\n"}).read_bytes()
    outer = make_zip(tmp_path / "outer.zip", {"archive.zip": inner})
    assert prepare.main(["unpack", str(outer), "--root", str(tmp_path / "files")]) == 2
    err = capsys.readouterr().err
    assert "holds another zip (archive.zip) instead of the data set: it was zipped twice" in err


def test_unpack_two_members_with_one_name_is_refused(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it writes
        archive = make_zip(tmp_path / "a.zip", {"train.csv": b"id,glasses\n1,1\n"})
        with zipfile.ZipFile(archive, "a") as more:
            more.writestr("train.csv", b"id,glasses\n1,0\n")
    with pytest.raises(UnsafeArchiveError, match="holds two files named 'train.csv'.*nothing was extracted"):
        safe_extract(archive, tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_unpack_a_folder_instead_of_the_zip_is_named(tmp_path, capsys):
    assert prepare.main(["unpack", str(tmp_path), "--root", str(tmp_path / "files")]) == 2
    assert "is a folder, not a zip file" in capsys.readouterr().err


def test_a_symbolic_link_loop_in_the_download_is_left_out_with_a_word(celeba, capsys):
    root, expected = celeba
    images = root / "img_align_celeba" / "img_align_celeba"
    looping = expected["blond"][0]
    (images / looping).unlink()
    try:
        os.symlink(looping, images / looping)
    except (OSError, NotImplementedError):
        pytest.skip("no symbolic links here")
    report = split_celeba(root)
    assert report.unreadable == 1 and looping not in names(root / "blond")
    assert "(a symbolic link that leads back to itself (a loop))" in capsys.readouterr().out


def test_a_root_or_corrections_of_the_wrong_kind_is_named(tmp_path, capsys):
    afile = tmp_path / "files.txt"
    afile.write_text("x")
    assert prepare.main(["split", "celeba", "--root", str(afile)]) == 2
    assert "--root" in (err := capsys.readouterr().err) and "files.txt is a file, not a folder" in err
    write_glasses(tmp_path / "g", LABELS)
    line = ["split", "glasses", "--root", str(tmp_path / "g"), "--corrections", str(tmp_path)]
    assert prepare.main(line) == 2
    assert "is a folder: give the file that lists the face ids" in capsys.readouterr().err
