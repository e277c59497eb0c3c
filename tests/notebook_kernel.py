"""Run notebook cells in a Jupyter kernel and keep every message a reader's browser would get.

(Test helper.) nbval only says whether a cell raised; a reader also sees what a cell prints,
the colour a progress bar ends in (a widget's `bar_style`, sent as comm messages) and the
traceback of an error. This runs each cell through `jupyter_client`, as JupyterLab does, and
keeps those messages so that tests can read them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ThisPython(KernelSpecManager):
    """Every kernel name means this interpreter: a `python3` kernel installed elsewhere on the
    machine (another Python without torch) must not run the tests."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name="Python 3 (tests)", language="python")


@dataclass
class CellRun:
    """One executed cell: its source and the IOPub messages it caused, as (type, content)."""

    source: str
    messages: list[tuple[str, dict]] = field(default_factory=list)

    @property
    def text(self) -> str:
        """What the cell printed (stdout and stderr), as a reader reads it."""
        return "".join(c["text"] for t, c in self.messages if t == "stream")

    @property
    def errors(self) -> list[str]:
        """The error outputs, each as the lines a reader sees (colour codes removed)."""
        return [ANSI.sub("", "\n".join(c["traceback"]) or f"{c['ename']}: {c['evalue']}")
                for t, c in self.messages if t == "error"]

    @property
    def bar_styles(self) -> list[str]:
        """Every `bar_style` a widget (a progress bar) was given: "danger" is a red bar."""
        styles = []
        for kind, content in self.messages:
            if kind in ("comm_open", "comm_msg"):
                state = content.get("data", {}).get("state", {})
                if state.get("bar_style"):
                    styles.append(state["bar_style"])
        return styles


class Kernel:
    """A live kernel (this Python) in `cwd` with `env`; `run(code)` executes one cell."""

    def __init__(self, manager: KernelManager):
        self.manager = manager
        self.client = manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 600) -> CellRun:
        cell = CellRun(code)
        reply = self.client.execute_interactive(
            code, timeout=timeout, allow_stdin=False,
            output_hook=lambda msg: cell.messages.append((msg["msg_type"], msg["content"])))
        cell.messages.append(("execute_reply", reply["content"]))
        return cell

    def run_notebook(self, path: Path, timeout: float = 600) -> list[CellRun]:
        """Every code cell in order, stopping after an error as "Run All" does."""
        cells = []
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                cells.append(self.run(cell.source, timeout))
                if cells[-1].errors:
                    break
        return cells


@contextmanager
def kernel(cwd: Path, env: dict[str, str]) -> Iterator[Kernel]:
    """A kernel of this Python started in `cwd` with exactly `env`; shut down afterwards."""
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())
    manager.start_kernel(cwd=str(cwd), env=env, stderr=subprocess.DEVNULL)
    try:
        running = Kernel(manager)
        try:
            yield running
        finally:
            running.client.stop_channels()
    finally:
        manager.shutdown_kernel(now=True)
