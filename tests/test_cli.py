"""utils.cli: a reader's mistake is one line and exit code 2; a bug keeps its traceback."""

from __future__ import annotations

import errno
import os
import shlex

import pytest

from utils.cli import (
    DEBUG_ENV,
    USER_ERROR_EXIT,
    SettingError,
    UserError,
    command,
    command_line,
    describe,
    is_user_error,
)


def _main_raising(error: BaseException):
    @command
    def main(argv=None) -> int:
        raise error

    return main


@pytest.mark.parametrize("error", [
    UserError("the folder files/black is empty — run `python -m utils.prepare split celeba` first"),
    SettingError("--num-residuals must be at least 0, got -1"),
    FileNotFoundError(errno.ENOENT, "No such file or directory", "files/nowhere.pth"),
    PermissionError(errno.EACCES, "Permission denied", "/root/locked"),
    OSError(errno.ENOSPC, "No space left on device", "files/run/checkpoint.pt"),
])
def test_a_user_error_is_one_line_and_exit_2(error, capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert _main_raising(error)([]) == USER_ERROR_EXIT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_the_messages_name_the_file_and_the_fix():
    missing = FileNotFoundError(errno.ENOENT, "No such file", "files/x.pth")
    assert "not found: files/x.pth" in describe(missing)
    full = describe(OSError(errno.ENOSPC, "No space left on device", "files/run/checkpoint.pt"))
    assert "no space left on files/run/checkpoint.pt" in full and "Free some disk space" in full


@pytest.mark.parametrize("code, words", [
    (errno.ENOTDIR, "a part of this path is a file"), (errno.EISDIR, "it is a folder where a file"),
    (errno.EEXIST, "already there"), (errno.ELOOP, "symbolic link that leads back to itself"),
])
def test_path_errors_say_what_is_wrong_in_words_not_errno(code, words):
    error = OSError(code, os.strerror(code), "files/run/samples")
    assert is_user_error(error)
    line = describe(error)
    assert line.startswith("files/run/samples: ") and words in line and "Errno" not in line


def test_a_bug_keeps_its_traceback(monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert not is_user_error(KeyError("oops"))
    with pytest.raises(KeyError):
        _main_raising(KeyError("oops"))([])


def test_debug_shows_the_traceback_of_user_errors_too(monkeypatch):
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(UserError):
        _main_raising(UserError("bad"))([])


def test_the_modules_errors_are_user_errors():
    from utils.archive import UnsafeArchiveError
    from utils.checkpoints import CheckpointError
    from utils.datasets import DataLayoutError
    from utils.kaggle import DownloadError
    from utils.prepare import CSVFormatError

    for cls in (UnsafeArchiveError, CheckpointError, DataLayoutError, DownloadError, CSVFormatError):
        assert issubclass(cls, UserError), cls


def test_the_steps_by_hand_come_above_the_one_error_line(capsys, monkeypatch):
    """Every command (not only prepare's) prints an error's manual steps, e.g. the demo on a
    half-missing CelebA download."""
    from utils.datasets import DataLayoutError

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    error = DataLayoutError("No CelebA download in files (steps above).", "1. download\n2. unzip")
    assert _main_raising(error)([]) == USER_ERROR_EXIT
    expected = "1. download\n2. unzip\nerror: No CelebA download in files (steps above).\n"
    assert capsys.readouterr().err == expected


@pytest.mark.parametrize("value, on", [("1", True), ("yes", True), ("0", False), ("off", False), ("", False)])
def test_ch06_debug_0_means_off(value, on, monkeypatch):
    monkeypatch.setenv(DEBUG_ENV, value)
    if on:
        with pytest.raises(UserError):
            _main_raising(UserError("bad"))([])
    else:
        assert _main_raising(UserError("bad"))([]) == USER_ERROR_EXIT


def test_a_printed_command_keeps_a_path_with_spaces_in_one_argument(monkeypatch):
    path = "/home/me/My Course/ch06/files"
    line = command_line("python", "-m", "utils.prepare", "split", "celeba", "--root", path)
    assert line.startswith("python -m utils.prepare split celeba --root ")  # plain words stay plain
    assert shlex.split(line)[-1] == path
    monkeypatch.setattr(os, "name", "nt")  # cmd.exe does not read single quotes: double quotes there
    assert command_line("--root", r"C:\Users\me\My Course") == r'--root "C:\Users\me\My Course"'
