"""One process at a time per folder: a lock file naming its holder, taken over when it is gone.

(Extra code – not in the book.) Two training runs into one `--out` folder both finished
"successfully" with every iteration twice in `history.csv`; two splits at once (two notebooks
open, or notebook 01 and `make demo`) corrupted the split's record. So every command that
writes a folder holds that folder's lock while it does: a second command for the same folder
stops at once with one line naming the first (its process id, its command, since when) and
what to do.

The lock is a small file created with `os.open(..., O_CREAT | O_EXCL)`, which exactly one
process can do on every operating system and on network drives; it holds the holder's process
id, the time its process started (so that a process id reused after a reboot does not count),
its host, its command line and a random token, and the holder touches it every 30 s. A lock
whose process is gone (killed, a crashed kernel, a machine that restarted) is stale: the next
command takes it over and says so in one line. A lock written on another host (a shared
drive: Colab writing to Google Drive) cannot be checked from here: it counts as held while it
is touched, and as stale once it has been silent for five minutes (a Colab session that
disconnected); the message says so, and how to remove it by hand.

Locks are re-entrant within a process (a notebook's `ensure_data` holds the split lock that
the split inside it takes again), and released only by the process that holds them.

    with hold(folder, OUTPUT_LOCK, advice="choose another --out folder"):
        ...write into folder...
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from utils.cli import UserError

OUTPUT_LOCK = "output"  # a folder a command writes its results into (train, demo, fetch, extract)
DATA_LOCK = "data"  # a data folder: the split, the unpack and the download of a data set
WAIT_FOR_WRITER_S = 5.0  # a lock file still empty after this long is a crash's leftover
HEARTBEAT_S = 30.0  # how often a holder touches its lock file: a sign of life other machines can see
STALE_ELSEWHERE_S = 300.0  # a lock from another machine without a sign of life for this long is stale
_held: dict[str, tuple[str, int, bool]] = {}  # real path of a lock -> (our token, depth, made its folder)
_beats: dict[str, threading.Event] = {}  # real path of a lock -> what stops its heartbeat
_guard = threading.Lock()


class FolderBusyError(UserError):
    """Another process holds the folder's lock; the message names it and says what to do."""


def lock_path(folder: Path, purpose: str) -> Path:
    """The lock file of `folder` for `purpose` (`OUTPUT_LOCK`, `DATA_LOCK`): `folder/.ch06-PURPOSE.lock`."""
    return Path(folder) / f".ch06-{purpose}.lock"


def process_start(pid: int) -> str | None:
    """When process `pid` started, as the system counts it (Linux: clock ticks since boot);
    None where that cannot be read (other systems, a process that is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rpartition(")")[2].split()
        return fields[19]  # starttime: field 22, the 20th after the command's name
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would end the process on Windows
        import ctypes

        kernel = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        try:
            kernel.GetExitCodeProcess(handle, ctypes.byref(code))
        finally:
            kernel.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _command_line() -> str:
    """This process's command as a reader would type it ("python -m utils.train --out ...")."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if "ipykernel" in name or (sys.argv and "ipykernel" in sys.argv[0]):
        return "a Jupyter notebook kernel"
    if name:
        text = f"python -m {name.removesuffix('.__main__')} {' '.join(sys.argv[1:])}"
    else:
        text = f"python {' '.join(sys.argv)}"
    return text.strip()[:200]


@dataclass(frozen=True)
class Holder:
    """What a lock file says about the process that holds it."""

    pid: int
    start: str | None
    host: str
    command: str
    since: float
    token: str

    @classmethod
    def me(cls) -> Holder:
        return cls(os.getpid(), process_start(os.getpid()), socket.gethostname(), _command_line(),
                   time.time(), secrets.token_hex(8))

    @classmethod
    def read(cls, path: Path) -> Holder | None:
        """The holder named in `path`, or None when the file is empty, damaged or gone."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(int(data["pid"]), data.get("start"), str(data["host"]), str(data["command"]),
                       float(data["since"]), str(data["token"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def text(self) -> str:
        return json.dumps({"pid": self.pid, "start": self.start, "host": self.host,
                           "command": self.command, "since": self.since, "token": self.token})

    def running(self, path: Path) -> bool | None:
        """True: the holder runs; False: it is gone; None: it is on another host and gave a sign of
        life lately (its heartbeat touches `path`), so it may still run (a Colab session writing to
        Drive, say). A lock from another host silent for `STALE_ELSEWHERE_S` counts as gone."""
        if self.host != socket.gethostname():
            try:
                silent = time.time() - path.stat().st_mtime
            except OSError:
                return None
            return None if silent < STALE_ELSEWHERE_S else False
        if not _pid_alive(self.pid):
            return False
        now = process_start(self.pid)
        return not (self.start and now and now != self.start)  # the id was reused: gone

    def describe(self) -> str:
        minutes = max(0, round((time.time() - self.since) / 60))
        ago = "under a minute ago" if minutes == 0 else f"{minutes} min ago"
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.since))
        return f"process {self.pid}{where} ({self.command}), since {since} ({ago})"


def _create(path: Path, holder: Holder) -> bool:
    """Create the lock file holding `holder`; False when it exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(holder.text())
    return True


def _heartbeat(path: Path) -> threading.Event:
    """Touch `path` every `HEARTBEAT_S` until the returned event is set (a daemon thread)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(path)

    threading.Thread(target=beat, name=f"lock heartbeat {path.name}", daemon=True).start()
    return stop


def _remove_if_unchanged(path: Path, seen: str) -> None:
    """Delete the stale lock `path` only if it still holds `seen`, under a short guard file so
    that two processes taking over the same stale lock cannot delete each other's new one."""
    guard = path.with_name(path.name + ".takeover")
    try:
        fd = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        with contextlib.suppress(OSError):
            if time.time() - guard.stat().st_mtime > 30:  # a taker that died in these microseconds
                guard.unlink()
        return
    os.close(fd)
    try:
        with contextlib.suppress(FileNotFoundError):
            if path.read_text(encoding="utf-8") == seen:
                path.unlink()
    finally:
        guard.unlink(missing_ok=True)


def acquire(folder: Path, purpose: str, *, advice: str, quiet: bool = False) -> Path:
    """Take `folder`'s lock for `purpose` or raise `FolderBusyError`; returns the lock file.

    `advice` completes "Wait for it to finish, or ..." (e.g. "choose another --out folder").
    Prefer `hold`, which releases the lock however the block ends.
    """
    folder = Path(folder)
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = lock_path(folder, purpose)
    key = os.path.realpath(path)
    with _guard:
        if key in _held:
            token, depth, made_before = _held[key]
            _held[key] = (token, depth + 1, made_before)
            return path
    me = Holder.me()
    deadline = time.monotonic() + WAIT_FOR_WRITER_S
    while True:
        if _create(path, me):
            with _guard:
                _held[key] = (me.token, 1, made)
                _beats[key] = _heartbeat(path)
            return path
        try:
            seen = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue  # released just now: try again
        holder = Holder.read(path)
        if holder is None:  # being written this instant, or left empty by a crash
            with contextlib.suppress(OSError):
                fresh = time.time() - path.stat().st_mtime < WAIT_FOR_WRITER_S
                if fresh and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
            if not quiet:
                print(f"note: {path} was empty or damaged (a process killed while taking it); "
                      "taking the lock over.", file=sys.stderr)
            _remove_if_unchanged(path, seen)
            continue
        running = holder.running(path)
        if running is False or (holder.pid == os.getpid() and holder.host == me.host):
            if not quiet:
                print(f"note: taking over the lock {path} of {holder.describe()}, which is no longer "
                      "running.", file=sys.stderr)
            _remove_if_unchanged(path, seen)
            continue
        unknown = ("" if running is not None else
                   f" (on another machine, which cannot be checked from here; its lock is taken over "
                   f"{STALE_ELSEWHERE_S / 60:g} minutes after its last sign of life)")
        raise FolderBusyError(
            f"{folder} is in use by {holder.describe()}{unknown}. Wait for it to finish or stop it, "
            f"or {advice}. If no such process is running, delete {path}.")


def release(path: Path) -> None:
    """Give up a lock taken by `acquire` in this process (the last of nested holds deletes it, and
    the folder too when `acquire` made it and nothing else was put there)."""
    key = os.path.realpath(path)
    with _guard:
        token, depth, made = _held.get(key, ("", 0, False))
        if depth > 1:
            _held[key] = (token, depth - 1, made)
            return
        _held.pop(key, None)
        beat = _beats.pop(key, None)
    if beat is not None:
        beat.set()
    holder = Holder.read(path)
    if holder is not None and holder.token == token:
        Path(path).unlink(missing_ok=True)
        if made:
            with contextlib.suppress(OSError):  # not empty: something was written there
                Path(path).parent.rmdir()


@contextlib.contextmanager
def hold(folder: Path, purpose: str, *, advice: str, quiet: bool = False) -> Iterator[Path]:
    """`acquire` for the length of a `with` block; released however the block ends."""
    path = acquire(folder, purpose, advice=advice, quiet=quiet)
    try:
        yield path
    finally:
        release(path)


def carry(lock: Path, into: Path) -> None:
    """Put this process's lock `lock` also into the folder `into`, which is about to replace the
    lock's folder (`os.replace`): the folder stays locked through the swap (a hard link, or a
    copy of the same holder where links are impossible)."""
    target = Path(into) / Path(lock).name
    try:
        os.link(lock, target)
    except OSError:
        target.write_text(Path(lock).read_text(encoding="utf-8"), encoding="utf-8")
