"""The layering of utils/ (written down in utils/__init__.py), checked by reading every import.

Every `import` and `from ... import` of every utils module counts, at module level and inside
functions alike: an import moved into a function to dodge a circle is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from utils.paths import REPO_ROOT

GROUND = {"paths", "images", "runtime", "speed", "cli", "ownership", "locks"}  # import nothing above them
CHAPTER = "ch06util"  # imports only the ground floor
DATA = {"prepare", "datasets", "archive", "kaggle", "split_record"}  # and synthetic*
TRAINING = {"settings", "setting_checks", "train", "run_loop", "run_state", "run_record", "train_data",
            "networks", "distributed", "fast_gpu"}
TEACHING = {"demo", "notebook"}  # the top: no library module imports them


def is_data(name: str) -> bool:
    return name in DATA or name.startswith("synthetic")


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(utils module imported, names taken from it, line) for every import of `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name.split(".")[1], [], node.lineno) for a in node.names
                      if a.name.startswith("utils.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "utils":
                found += [(a.name, [], node.lineno) for a in node.names]
            elif node.module.startswith("utils."):
                found.append((node.module.split(".")[1], [a.name for a in node.names], node.lineno))
    return found


def import_graph(utils_dir: Path) -> dict[str, set[str]]:
    graph = {}
    for path in sorted(utils_dir.glob("*.py")):
        if path.stem != "__init__":
            graph[path.stem] = {target for target, _, _ in imports(path) if target != path.stem}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def rule_breaks(utils_dir: Path) -> list[str]:
    """Every broken layering rule of the modules in `utils_dir`, one line each."""
    broken = [f"import circle: {' -> '.join(c)}" for c in circles(import_graph(utils_dir))]
    for path in sorted(utils_dir.glob("*.py")):
        me = path.stem
        for target, names, line in imports(path):
            where = f"utils/{path.name}:{line} imports utils.{target}"
            if me in GROUND and target not in GROUND:
                broken.append(f"{where}: the ground floor imports only the ground floor")
            if me == CHAPTER and target not in GROUND:
                broken.append(f"{where}: ch06util imports only the ground floor")
            if is_data(me) and (target in TRAINING or target in TEACHING):
                broken.append(f"{where}: data code never imports training")
            if me not in TEACHING and target in TEACHING:
                broken.append(f"{where}: library code never imports the demo or the notebooks")
            private = [n for n in names if n.startswith("_") and target != me]
            if private:
                broken.append(f"{where} private name(s) {', '.join(private)}")
    return broken


def test_utils_keeps_its_layers():
    assert rule_breaks(REPO_ROOT / "utils") == []


def test_the_layers_name_real_modules():
    """A module renamed or moved must be renamed here too, or its rules would silently stop."""
    named = GROUND | {CHAPTER} | DATA | TRAINING | TEACHING
    modules = {p.stem for p in (REPO_ROOT / "utils").glob("*.py")} - {"__init__"}
    assert not (named - modules), f"layers name modules that do not exist: {sorted(named - modules)}"


@pytest.mark.parametrize("files, expected", [
    ({"a": "from utils import b", "b": "def f():\n    from utils.a import x\n"}, "import circle: a -> b"),
    ({"paths": "from utils import train", "train": ""}, "the ground floor imports only the ground floor"),
    ({"ch06util": "import utils.checkpoints", "checkpoints": ""}, "ch06util imports only the ground floor"),
    ({"synthetic_x": "from utils.train import train", "train": ""}, "data code never imports training"),
    ({"show": "from utils.notebook import FAST", "notebook": ""}, "never imports the demo or the notebooks"),
    ({"a": "from utils.b import _hidden", "b": ""}, "private name(s) _hidden"),
])
def test_each_rule_catches_its_break(tmp_path, files, expected):
    """The checker itself: one small package per rule, broken on purpose."""
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    broken = rule_breaks(tmp_path)
    assert len(broken) == 1 and expected in broken[0], broken
