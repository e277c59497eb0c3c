"""How every command line of the project reports a reader's mistake: one line, exit code 2.

(Extra code – not in the book.) A reader who mistypes a folder or gives a nonsense setting
should read what is wrong and how to fix it, not forty lines of traceback that bury it. A
genuine bug is different: its traceback is what a maintainer needs, so only the errors
that are known to be the reader's to fix are shortened:

* `UserError` and its subclasses (each module's own errors derive from it: a damaged
  checkpoint, a data set in the wrong place, an unsafe zip, a bad setting, ...);
* the operating system's answers about the reader's files and disk (a missing file, a folder
  that cannot be written, a full disk), which no code of ours can fix.

Set `CH06_DEBUG=1` to see the full traceback of those too.

A termination signal (SIGTERM: a laptop shutting down, a cluster's time limit, `kill`) is
handled like Ctrl-C: it raises `Terminated` (a `KeyboardInterrupt`), so the same clean-up
runs (a training run saves a checkpoint first), and the command says so in one line and
exits 143 (Ctrl-C: 130).

Usage, in a module with a `main(argv) -> int`::

    @command
    def main(argv=None) -> int: ...
"""

from __future__ import annotations

import errno
import functools
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

DEBUG_ENV = "CH06_DEBUG"
USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130
TERMINATED_EXIT = 143  # 128 + SIGTERM, what a shell reports for a process ended by `kill`

Main = Callable[[Sequence[str] | None], int]


class UserError(Exception):
    """A mistake the reader can fix; its message says what is wrong and how to fix it.

    The message is one line; `steps` (several lines, may be empty) is what to do by hand
    (the manual download steps, say), printed above the one `error:` line.
    """

    def __init__(self, message: str = "", steps: str = ""):
        super().__init__(message)
        self.steps = steps


class SettingError(UserError, ValueError):
    """A setting outside its allowed range (a ValueError too, for callers that expect one)."""


# The OS errors that describe the reader's files or machine, not a bug of ours.
_READER_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EEXIST,
                  errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EDQUOT, errno.ELOOP}


_READER_OS_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
                     PermissionError)


def shell_quote(argument: str | os.PathLike) -> str:
    """One argument of a command we print for the reader to paste, quoted for their shell.

    A folder named "My Course" must stay one argument: `shlex.quote` on macOS and Linux,
    `subprocess.list2cmdline` (cmd.exe's double quotes) on Windows. Plain words stay as they are.
    """
    text = os.fspath(argument)
    return subprocess.list2cmdline([text]) if os.name == "nt" else shlex.quote(text)


def command_line(*arguments: str | os.PathLike) -> str:
    """A command to print, each argument quoted: `command_line("python", "-m", "utils.x", path)`."""
    return " ".join(shell_quote(a) for a in arguments)


def python_command(module: str, *arguments: str | os.PathLike) -> str:
    """`python -m MODULE ARGUMENTS...` to print, each argument quoted (see `command_line`)."""
    return command_line("python", "-m", module, *arguments)


def is_user_error(error: BaseException) -> bool:
    """Whether `error` is the reader's to fix (see the module docstring)."""
    if isinstance(error, (UserError, *_READER_OS_ERRORS)):
        return True
    return isinstance(error, OSError) and error.errno in _READER_ERRNOS


def describe(error: BaseException) -> str:
    """The one line a reader sees for `error`."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        where = f" on {error.filename}" if error.filename else ""
        return (f"no space left{where}. Free some disk space (old runs in files/ are the usual "
                "culprits), then run the same command again.")
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write or read {error.filename or 'a file'} ({error.strerror}). "
                "Choose a folder you own, or fix its permissions.")
    if isinstance(error, OSError) and error.errno == errno.ENOENT and error.filename:
        return f"not found: {error.filename}. Check the path."
    # the raw "[Errno 20] Not a directory: ..." of a path given where the other kind was meant
    paths = {errno.ENOTDIR: "a part of this path is a file where a folder is needed: give a folder, "
                            "or move that file",
             errno.EISDIR: "it is a folder where a file is needed: give the path of a file",
             errno.EEXIST: "something of that name is already there: choose another name, or move it",
             errno.ELOOP: "it is a symbolic link that leads back to itself (a loop): remove the link or "
                          "point it at a real file or folder"}
    if isinstance(error, OSError) and error.errno in paths and error.filename:
        return f"{error.filename}: {paths[error.errno]}."
    return " ".join(str(error).split()) or type(error).__name__


def debugging() -> bool:
    """Whether `CH06_DEBUG` asks for full tracebacks: any value but 0/false/no/off (or unset),
    so that `CH06_DEBUG=0` means off, as the other switches' 0 does."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in {"", "0", "false", "no", "off"}


def report(error: BaseException, stream=None) -> int:
    """Print `error` as one `error: ...` line (its `steps`, if any, above it); the exit code."""
    stream = stream or sys.stderr
    if getattr(error, "steps", ""):
        print(error.steps, file=stream)
    print(f"error: {describe(error)}", file=stream)
    return USER_ERROR_EXIT


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would raise KeyboardInterrupt (see the module docstring)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """143 for a termination signal, 130 for Ctrl-C."""
    return TERMINATED_EXIT if isinstance(interrupt, Terminated) else INTERRUPTED_EXIT


def command(main: Main) -> Main:
    """Wrap a command line's `main(argv) -> int` so that reader mistakes end in one line, exit 2.

    Bugs are re-raised untouched; `CH06_DEBUG=1` re-raises everything. SIGTERM is turned into
    `Terminated` while the command runs (main thread only: elsewhere signals cannot be caught).
    """

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return main(argv)
        except KeyboardInterrupt as interrupt:
            print("terminated." if isinstance(interrupt, Terminated) else "interrupted.", file=sys.stderr)
            return exit_code(interrupt)
        except Exception as error:  # noqa: BLE001 - filtered just below
            if debugging() or not is_user_error(error):
                raise
            return report(error)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper
