"""Fetch a data set from Kaggle with kagglehub, or say exactly how to get it by hand.

The chapter takes the CelebA download for granted. Here it is one command once a Kaggle
token is set up; without a token, without kagglehub, or offline, a DownloadError names
the manual steps and the data folder is left as it was. Credentials are only looked for,
never printed: the reader's key is blanked out of any error message. What kagglehub
fetches stays in its cache and is linked into place with `utils.archive`'s all-or-nothing
install.

Command line: `python -m utils.prepare download celeba|glasses [--root files]`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from utils.archive import check_targets_free, find_dataset_root, in_place_message, install, safe_extract
from utils.cli import UserError
from utils.datasets import DataLayoutError, DatasetSpec, PathLike, dataset_spec, layout_problems, manual_steps
from utils.locks import DATA_LOCK, hold
from utils.paths import files_dir


class DownloadError(UserError, RuntimeError):
    """The Kaggle download could not be done: a one-line message, and `steps` to get the data by hand."""


def kaggle_credentials_source() -> str | None:
    """Where Kaggle credentials would come from (a description, never the token), or None."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "the KAGGLE_API_TOKEN environment variable"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "the KAGGLE_USERNAME/KAGGLE_KEY environment variables"
    folder = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    for name in ("kaggle.json", "access_token", "access_token.txt"):
        if (folder / name).is_file():
            return str(folder / name)
    try:  # Colab secrets (the reader grants access once per notebook)
        from google.colab import userdata  # type: ignore[import-not-found]
    except ImportError:
        return None
    for names in (("KAGGLE_API_TOKEN",), ("KAGGLE_USERNAME", "KAGGLE_KEY")):
        try:
            if all(userdata.get(n) for n in names):  # kagglehub reads them there itself
                return "Colab secrets " + "/".join(names)
        except Exception:  # noqa: BLE001 - a secret not granted or not defined: try the next
            continue
    return None


def _scrub(text: str) -> str:
    """Remove anything that looks like the reader's Kaggle key from a message."""
    secrets = [os.environ.get(n, "") for n in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")]
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, "***")
    return text


def download(kind: str, root: PathLike | None = None) -> Path:
    """Fetch `kind` from Kaggle with kagglehub and lay it out under `root`, all or nothing.

    kagglehub keeps the files in its cache (~/.cache/kagglehub); they are hard-linked (or
    copied) into a staging folder inside `root` and renamed into place only once the
    layout is complete. Without credentials, without kagglehub, or offline: DownloadError
    with the manual steps, and `root` is left as it was.
    """
    spec = dataset_spec(kind)
    root = Path(root) if root is not None else files_dir()
    if not layout_problems(kind, root):
        print(f"{spec.title} is already in place in {root}; nothing to download.")
        return root
    check_targets_free(spec, root)
    source = kaggle_credentials_source()
    if source is None:
        raise DownloadError(f"No Kaggle credentials found, so {spec.title} cannot be downloaded "
                            "automatically: get it by hand or create a Kaggle API token (steps above).",
                            manual_steps(kind, root))
    try:
        import kagglehub
    except ImportError:
        raise DownloadError("The kagglehub package is not installed: pip install kagglehub, or get "
                            f"{spec.title} by hand (steps above).", manual_steps(kind, root)) from None
    print(f"Downloading {spec.handle} with kagglehub (credentials from {source}) ...")
    try:
        fetched = Path(kagglehub.dataset_download(spec.handle))
    except Exception as err:  # noqa: BLE001 - network, HTTP 401/403/404, disk: all end the same way
        reason = _scrub(f"{type(err).__name__}: {err}")
        raise DownloadError(f"The download of {spec.handle} failed: {reason}. "
                            "Check the connection and the credentials, or get it by hand (steps above).",
                            manual_steps(kind, root)) from None
    root.mkdir(parents=True, exist_ok=True)
    with hold(root, DATA_LOCK, advice="download again once it is done"):  # no split or unpack meanwhile
        check_targets_free(spec, root)
        _install_fetched(spec, kind, fetched, root)
    print(in_place_message(spec, root))
    return root


def _install_fetched(spec: DatasetSpec, kind: str, fetched: Path, root: Path) -> None:
    """What kagglehub fetched into `root`'s layout through a staging folder (see `download`)."""
    staging = Path(tempfile.mkdtemp(prefix=f".download-{kind}-", dir=root))
    try:
        if fetched.is_dir() and find_dataset_root(fetched, spec):
            install(spec, fetched, root, staging, link=True)
        else:  # some kagglehub versions/paths hand back the archive itself
            zips = [fetched] if fetched.is_file() else sorted(fetched.glob("*.zip"))
            if not zips:
                raise DataLayoutError(f"kagglehub returned {fetched}, which holds neither {spec.csv} "
                                      "nor a zip: get the data by hand (steps above).",
                                      manual_steps(kind, root))
            safe_extract(zips[0], staging / "extracted")
            install(spec, staging / "extracted", root, staging, link=False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":  # no command line of its own: say which one to use rather than do nothing
    import sys

    print("error: this module has no command line of its own — run `python -m utils.prepare "
          "download celeba|glasses [--root files]`.", file=sys.stderr)
    sys.exit(2)
