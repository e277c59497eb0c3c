"""Where the repository is published: one constant, and one command that moves every copy of it.

(Extra code – not in the book.) The notebooks' first cells clone the repository on Colab and
the README's badges open the notebooks there, so both need its GitHub address. A first
cell runs before the repository is on the machine and cannot import this module, so each
one carries the address as the default of the `CH06_REPO` environment variable, and
`tests/test_colab.py` fails when a first cell or a badge disagrees with `REPO`. A fork
changes them all with one command:

    python -m utils.repo OWNER/NAME     # rewrites REPO below, the five first cells (.py and
                                        # .ipynb) and the README's badges; then commit
    python -m utils.repo --check        # lists every place that disagrees with REPO
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

from utils.cli import SettingError, UserError, command
from utils.paths import REPO_ROOT

REPO = "genai-pytorch/ch06-cyclegan"
BRANCH = "main"  # the branch the badges open

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
# The three kinds of places, each with the address as its group 2 (quotes may be JSON-escaped).
_CONSTANT = re.compile(r'^(REPO = ")([^"]+)(")', re.MULTILINE)
_FIRST_CELL = re.compile(r'(\\?"CH06_REPO\\?",\s*\\?")([^"\\]+)(\\?")')
_BADGE = re.compile(r"(https://colab\.research\.google\.com/github/)([^/\s]+/[^/\s]+)(/blob/)")


def colab_url(notebook: str, repo: str = REPO) -> str:
    """The address that opens `notebooks/<notebook>.ipynb` of `repo` in Colab."""
    return f"https://colab.research.google.com/github/{repo}/blob/{BRANCH}/notebooks/{notebook}.ipynb"


def places(root: Path = REPO_ROOT) -> list[Path]:
    """Every file that names the address: this module, the README, the notebooks and twins."""
    notebooks = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    twins = [nb.with_suffix(".py") for nb in notebooks if nb.with_suffix(".py").is_file()]
    return [root / "utils" / "repo.py", root / "README.md", *notebooks, *twins]


def _pattern(path: Path) -> re.Pattern[str]:
    if path.name == "repo.py":
        return _CONSTANT
    return _BADGE if path.suffix == ".md" else _FIRST_CELL


def addresses(path: Path) -> list[str]:
    """The addresses `path` names, in order (one per badge; one per first cell)."""
    return [m.group(2) for m in _pattern(path).finditer(path.read_text(encoding="utf-8"))]


def disagreements(repo: str = REPO, root: Path = REPO_ROOT) -> list[str]:
    """`file: address` for every place that names another address than `repo`, or none at all."""
    found = []
    for path in places(root):
        names = addresses(path)
        if not names:
            found.append(f"{path.relative_to(root)}: no address found")
        found += [f"{path.relative_to(root)}: {name}" for name in names if name != repo]
    return found


def set_repo(repo: str, root: Path = REPO_ROOT) -> list[Path]:
    """Write `repo` (OWNER/NAME) into every place; returns the files that changed."""
    if not _NAME.fullmatch(repo):
        raise SettingError(f"{repo!r} is not a GitHub OWNER/NAME: write it like jane/ch06-cyclegan.")
    changed = []
    for path in places(root):
        text = path.read_text(encoding="utf-8")
        new = _pattern(path).sub(lambda m: m.group(1) + repo + m.group(3), text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


@command
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.repo", description=__doc__.split("\n")[0])
    parser.add_argument("repo", nargs="?", metavar="OWNER/NAME", help="the fork's GitHub address")
    parser.add_argument("--check", action="store_true", help="list the places that disagree with REPO")
    args = parser.parse_args(argv)
    if args.check or not args.repo:
        wrong = disagreements()
        print("\n".join(wrong) if wrong else f"Every first cell and badge names {REPO}.")
        return 1 if wrong else 0
    changed = set_repo(args.repo)
    wrong = disagreements(args.repo)
    if wrong:
        raise UserError("some places still name another address: " + "; ".join(wrong))
    print(f"{args.repo}: rewrote {len(changed)} files" + "".join(f"\n  {p.relative_to(REPO_ROOT)}"
                                                              for p in changed))
    print("Commit them; a notebook opened from your fork's badges then clones your fork.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
