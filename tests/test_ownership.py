"""utils.ownership: a command replaces only files it wrote; output paths that cannot be used say so."""

from __future__ import annotations

import os

import pytest

from utils.ownership import (
    RECORD,
    NotOursError,
    OutputPathError,
    OwnedFiles,
    output_file,
    output_folder,
    refuse_foreign,
    write_owned,
)


def test_a_file_written_by_a_command_is_its_own_until_someone_else_changes_it(tmp_path):
    (tmp_path / "metrics.json").write_text("1")
    record = OwnedFiles.load(tmp_path)
    record.claim("metrics.json", "utils.demo")
    record.save()
    again = OwnedFiles.load(tmp_path)
    assert again.owner("metrics.json") == "utils.demo" and again.owns("metrics.json", {"utils.demo"})
    (tmp_path / "metrics.json").unlink()
    (tmp_path / "metrics.json").write_text("the reader's own, under the same name")
    assert OwnedFiles.load(tmp_path).owner("metrics.json") is None


def test_refuse_foreign_names_the_files_and_writes_nothing(tmp_path):
    (tmp_path / "gen_black.pth").write_bytes(b"the book's pair")
    with pytest.raises(NotOursError) as caught:
        refuse_foreign(tmp_path, ["gen_black.pth", "gen_blond.pth"], "utils.train", fix="Pass --force.")
    message = str(caught.value)
    assert "gen_black.pth" in message and "gen_blond.pth" not in message and message.endswith("--force.")
    assert (tmp_path / "gen_black.pth").read_bytes() == b"the book's pair"
    assert not (tmp_path / RECORD).exists()


def test_write_owned_replaces_its_own_file_but_not_a_readers(tmp_path):
    target = tmp_path / "out" / "face.png"
    write_owned(target, "utils.translate", lambda p: p.write_text("first"), fix="x")
    write_owned(target, "utils.translate", lambda p: p.write_text("second"), fix="x")
    assert target.read_text() == "second"
    os.replace(tmp_path / "out" / "face.png", tmp_path / "moved")
    target.write_text("mine")
    with pytest.raises(NotOursError, match="choose another name"):
        write_owned(target, "utils.translate", lambda p: p.write_text("third"), fix="choose another name")
    assert target.read_text() == "mine"
    write_owned(target, "utils.translate", lambda p: p.write_text("forced"), fix="x", force=True)
    assert target.read_text() == "forced"


def test_a_command_cannot_replace_another_commands_file(tmp_path):
    write_owned(tmp_path / "gen_black.pth", "utils.published", lambda p: p.write_text("book"), fix="x")
    with pytest.raises(NotOursError):
        write_owned(tmp_path / "gen_black.pth", "utils.train", lambda p: p.write_text("run"), fix="x")
    assert (tmp_path / "gen_black.pth").read_text() == "book"


def test_two_records_saved_one_after_the_other_keep_both_entries(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_text(name)
    first, second = OwnedFiles.load(tmp_path), OwnedFiles.load(tmp_path)  # two commands at once
    first.claim("a.png", "utils.translate")
    second.claim("b.png", "utils.translate")
    first.save()
    second.save()
    record = OwnedFiles.load(tmp_path)
    assert record.owner("a.png") == record.owner("b.png") == "utils.translate"


def test_a_damaged_record_vouches_for_nothing(tmp_path):
    (tmp_path / "history.csv").write_text("x")
    (tmp_path / RECORD).write_text("{not json")
    assert OwnedFiles.load(tmp_path).owner("history.csv") is None


def test_output_folder_refuses_a_file_and_a_path_through_a_file_in_one_line(tmp_path):
    afile = tmp_path / "run"
    afile.write_text("notes")
    with pytest.raises(OutputPathError, match=r"--out .*run is a file, not a folder"):
        output_folder(afile)
    with pytest.raises(OutputPathError, match=r"cannot be made: .*run is a file"):
        output_folder(afile / "samples")
    assert afile.read_text() == "notes"
    assert output_folder(tmp_path / "new" / "deep").is_dir()


def test_output_file_refuses_a_folder_and_a_path_through_a_file(tmp_path):
    with pytest.raises(OutputPathError, match="is a folder: give the name of a file"):
        output_file(tmp_path, "--json")
    (tmp_path / "x").write_text("")
    with pytest.raises(OutputPathError, match=r"--json .*x[/\\]m.json cannot be written: .*x is a file"):
        output_file(tmp_path / "x" / "m.json", "--json")
    assert output_file(tmp_path / "a" / "m.json").parent.is_dir()
