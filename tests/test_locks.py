"""utils.locks: one process per folder, with real processes; stale locks taken over with a word."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from utils import locks
from utils.locks import FolderBusyError, Holder, acquire, hold, lock_path, release

REPO = Path(__file__).resolve().parent.parent

# A child process: take the lock, say so, hold it until its stdin closes; or say "busy: <message>".
CHILD = """
import sys
from utils.locks import FolderBusyError, hold
try:
    with hold(sys.argv[1], "output", advice="choose another --out folder"):
        print("held", flush=True)
        sys.stdin.read()
except FolderBusyError as error:
    print("busy:", error, flush=True)
"""


def child(folder: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_processes_racing_for_one_folder_one_wins_and_the_other_names_it(tmp_path):
    first, second = child(tmp_path), child(tmp_path)
    try:
        answers = {first.stdout.readline().strip(): first, second.stdout.readline().strip(): second}
    finally:
        for proc in (first, second):
            proc.stdin.close()
            proc.wait(timeout=60)
    held = [a for a in answers if a == "held"]
    busy = [a for a in answers if a.startswith("busy:")]
    assert len(held) == 1 and len(busy) == 1, answers
    winner = answers["held"]
    assert f"process {winner.pid} " in busy[0] and "python -c" in busy[0]
    assert "choose another --out folder" in busy[0] and str(lock_path(tmp_path, "output")) in busy[0]
    assert not lock_path(tmp_path, "output").exists()  # the winner released it on its way out


def test_a_lock_held_by_a_live_process_is_refused_in_one_line(tmp_path):
    holder = child(tmp_path)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError) as caught:
            acquire(tmp_path, "output", advice="choose another --out folder")
        message = str(caught.value)
        assert f"process {holder.pid} " in message and "since" in message and "\n" not in message
        assert Holder.read(lock_path(tmp_path, "output")).pid == holder.pid  # untouched
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_the_lock_of_a_killed_process_is_taken_over_with_a_word(tmp_path, capsys):
    holder = child(tmp_path)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()  # no finally, no release: the lock file stays behind
    holder.wait(timeout=60)
    assert Holder.read(lock_path(tmp_path, "output")).pid == holder.pid
    with hold(tmp_path, "output", advice="x") as path:
        assert Holder.read(path).pid == os.getpid()
    err = capsys.readouterr().err
    assert f"taking over the lock {path} of process {holder.pid} " in err and "no longer running" in err
    assert not path.exists()


def _write_lock(folder: Path, **fields) -> Path:
    path = lock_path(folder, "output")
    record = {"pid": 1, "start": None, "host": socket.gethostname(), "command": "python -m utils.train",
              "since": time.time() - 600, "token": "abc", **fields}
    path.write_text(json.dumps(record))
    return path


def test_a_reused_process_id_does_not_keep_a_lock(tmp_path, capsys):
    if locks.process_start(os.getppid()) is None:
        pytest.skip("process start times are read from /proc (Linux)")
    # the parent process runs, but it started at another time than the one the lock recorded
    _write_lock(tmp_path, pid=os.getppid(), start="1")
    with hold(tmp_path, "output", advice="x"):
        pass
    assert "no longer running" in capsys.readouterr().err


def test_a_lock_from_another_machine_is_not_taken_and_says_how_to_remove_it(tmp_path):
    path = _write_lock(tmp_path, host="some-other-host", pid=os.getpid())
    with pytest.raises(FolderBusyError, match="another machine") as caught:
        acquire(tmp_path, "output", advice="x")
    message = str(caught.value)
    assert f"delete {path}" in message and "5 minutes after its last sign of life" in message
    assert path.exists()


def test_a_silent_lock_from_another_machine_is_taken_over(tmp_path, capsys):
    """A Colab session writing to Drive disconnected: its lock stops being touched."""
    path = _write_lock(tmp_path, host="a-colab-machine-gone")
    old = time.time() - locks.STALE_ELSEWHERE_S - 60
    os.utime(path, (old, old))
    with hold(tmp_path, "output", advice="x"):
        assert Holder.read(path).pid == os.getpid()
    assert "no longer running" in capsys.readouterr().err


def test_a_holder_keeps_touching_its_lock(tmp_path, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    with hold(tmp_path, "output", advice="x") as path:
        old = time.time() - 3600
        os.utime(path, (old, old))
        deadline = time.monotonic() + 10
        while path.stat().st_mtime < old + 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_mtime > old + 60


def test_an_empty_lock_left_by_a_crash_is_taken_over(tmp_path, capsys):
    path = lock_path(tmp_path, "output")
    path.write_text("")
    old = time.time() - 60
    os.utime(path, (old, old))
    with hold(tmp_path, "output", advice="x"):
        assert Holder.read(path).pid == os.getpid()
    assert "empty or damaged" in capsys.readouterr().err


def test_locks_are_reentrant_in_one_process_and_released_by_the_last_hold(tmp_path):
    with hold(tmp_path, "split", advice="x") as outer:
        with hold(tmp_path, "split", advice="x") as inner:
            assert inner == outer
        assert outer.exists()
    assert not outer.exists()


def test_release_never_deletes_a_lock_another_process_took(tmp_path):
    path = acquire(tmp_path, "output", advice="x")
    _write_lock(tmp_path, pid=os.getppid(), token="theirs")  # as if taken over meanwhile
    release(path)
    assert Holder.read(path).token == "theirs"


def test_carry_keeps_the_folder_locked_through_a_swap(tmp_path):
    folder, staging = tmp_path / "synthetic", tmp_path / ".staging"
    folder.mkdir()
    staging.mkdir()
    with hold(folder, "split", advice="x") as path:
        locks.carry(path, staging)
        os.replace(folder, tmp_path / ".old")
        os.replace(staging, folder)
        assert Holder.read(path).pid == os.getpid()
    assert not path.exists()
