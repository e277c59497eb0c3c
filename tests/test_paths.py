"""utils.paths (the one atomic text writer; where files/ is) and the environment switches of utils.runtime."""

from __future__ import annotations

import os

import pytest

from utils.paths import atomic_write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic_write_text(path, "old")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_the_file_gets_the_usual_mode_not_mkstemps_0600(tmp_path):
    mask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "sub" / "record.json", "{}")
    finally:
        os.umask(mask)
    assert path.read_text() == "{}" and (path.stat().st_mode & 0o777) == 0o644


def test_ch06_files_pointing_at_a_file_is_one_clear_line(tmp_path, monkeypatch):
    from utils.cli import SettingError
    from utils.paths import files_dir

    afile = tmp_path / "files.txt"
    afile.write_text("notes")
    monkeypatch.setenv("CH06_FILES", str(afile))
    with pytest.raises(SettingError, match=r"CH06_FILES=.*files.txt' is a file, not a folder"):
        files_dir()
    monkeypatch.setenv("CH06_FILES", str(afile / "sub"))
    with pytest.raises(SettingError, match=r"lies under .*files.txt, which is a file"):
        files_dir()
    monkeypatch.setenv("CH06_FILES", str(tmp_path / "new"))
    assert files_dir() == (tmp_path / "new").resolve()
    assert afile.read_text() == "notes"


@pytest.mark.parametrize("value, on", [("1", True), ("yes", True), (" On ", True), ("0", False),
                                       ("", False), ("off", False)])
def test_ch06_fast_accepts_the_usual_words(value, on, monkeypatch):
    from utils.runtime import fast_mode

    monkeypatch.setenv("CH06_FAST", value)
    assert fast_mode() is on


def test_ch06_fast_with_another_word_says_which_values_it_accepts(monkeypatch):
    from utils.cli import SettingError
    from utils.runtime import fast_mode

    monkeypatch.setenv("CH06_FAST", "maybe")
    with pytest.raises(SettingError, match=r"CH06_FAST='maybe' is not understood: use CH06_FAST=1 .*=0"):
        fast_mode()
