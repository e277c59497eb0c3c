"""Saving and loading weights safely: atomic writes, `weights_only` loads, clear errors.

A reader's runtime can die mid-save (Colab disconnects, laptops sleep) and readers load
files they downloaded. So every save goes to a temporary file that is renamed into place
only once complete, and every load uses `weights_only=True`, which never runs pickled code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.ch06util import Generator, generator_variant
from utils.cli import UserError

PathLike = str | os.PathLike


class CheckpointError(UserError, RuntimeError):
    """A weights file that cannot be used, with the reason and what to do about it."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: PathLike) -> Path:
    """`torch.save` to a temporary file beside `path`, then rename it over `path`.

    The rename is atomic on POSIX and Windows (`os.replace`), so `path` always holds
    either the old complete file or the new complete file, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def safe_load(path: PathLike, map_location: Any = "cpu") -> Any:
    """`torch.load(..., weights_only=True)` with errors that say what went wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No weights file at {path}. Train first (notebook 03 or `python -m utils.train`) "
            "or put the chapter's published file there."
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise CheckpointError(
            f"Cannot read {path} as PyTorch weights ({type(error).__name__}: {error}). The file "
            "is damaged (an interrupted download or save?) or holds more than tensors and plain "
            "values; download or train it again."
        ) from error


def load_state_dict_checked(model: nn.Module, state: dict, source: PathLike) -> nn.Module:
    """`load_state_dict(strict=True)`, turning key and shape mismatches into one clear message."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{source} holds a {type(state).__name__}, not a state_dict.")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
             for k in own.keys() & state.keys()
             if hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing keys {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            details.append(f"unexpected keys {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
        if wrong:
            details.append(f"wrong shapes {wrong[:3]}{' ...' if len(wrong) > 3 else ''}")
        raise CheckpointError(
            f"{source} does not fit {model.__class__.__name__}: {'; '.join(details)}. Was it "
            "saved from a model of another size (num_features / num_residuals) or another class?"
        )
    model.load_state_dict(state, strict=True)
    return model


def generator_shape(state: dict) -> tuple[int, int]:
    """(num_features, num_residuals) of a Generator state_dict, read off its keys and shapes."""
    try:
        num_features = int(state["initial.0.weight"].shape[0])
    except (KeyError, AttributeError, IndexError, TypeError) as error:
        raise CheckpointError("Not a Generator state_dict: it has no 'initial.0.weight'.") from error
    blocks = {key.split(".")[1] for key in state if key.startswith("res_blocks.")}
    return num_features, len(blocks)


def load_generator(path: PathLike, device: Any = "cpu", num_features: int | None = None,
                   num_residuals: int | None = None) -> Generator:
    """A `Generator` in eval mode with the weights of `path` (e.g. `files/gen_black.pth`).

    Width and depth are read from the file unless given, so the chapter's published
    64-wide, 9-block weights and a small demo model load the same way. So is the variant
    (extra code – beyond the chapter): a file saved from `Generator(..., variant=...)` carries
    its `variant_id`, and is rebuilt as that variant, never run as the chapter's generator.
    """
    state = safe_load(path, map_location="cpu")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state_dict.")
    try:
        variant = generator_variant(state)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error} Was it saved by a newer version of this code?") from error
    if num_features is None or num_residuals is None:
        found = generator_shape(state)
        num_features = num_features or found[0]
        num_residuals = num_residuals if num_residuals is not None else found[1]
    gen = Generator(img_channels=3, num_features=num_features, num_residuals=num_residuals, variant=variant)
    load_state_dict_checked(gen, state, path)
    return gen.to(device).eval()


# extra code – the chapter's published weights, as an alternative to training
PUBLISHED_FILES = ("gen_black.pth", "gen_blond.pth")
WEIGHTS_URL_ENV = "CH06_WEIGHTS_URL"


def fetch_published_generators(base_url: str | None, dest: PathLike, timeout: float = 30.0
                               ) -> list[Path]:
    """Download `gen_black.pth` and `gen_blond.pth` from `base_url` (or `$CH06_WEIGHTS_URL`).

    Each file is checked to load into `Generator(3)` before it replaces anything in
    `dest`, so a dead link, an HTML error page or a cut connection leaves `dest` as it was.
    """
    import urllib.error
    import urllib.request

    base_url = base_url or os.environ.get(WEIGHTS_URL_ENV)
    dest = Path(dest)
    if not base_url:
        raise CheckpointError(
            "No address for the published weights. Download gen_black.pth and gen_blond.pth from "
            f"the book's resources into {dest}, or set {WEIGHTS_URL_ENV} to the folder URL "
            "that holds them."
        )
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PUBLISHED_FILES:
        url = base_url.rstrip("/") + "/" + name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".download", dir=dest)
        try:
            with os.fdopen(fd, "wb") as handle, urllib.request.urlopen(url, timeout=timeout) as resp:
                while chunk := resp.read(1 << 20):
                    handle.write(chunk)
            load_state_dict_checked(Generator(3), safe_load(tmp), url)
            os.replace(tmp, dest / name)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise CheckpointError(
                f"Could not download {url} ({error}). Offline, or the link is dead: download the "
                f"file by hand into {dest}, or train your own (notebook 03)."
            ) from error
        finally:
            Path(tmp).unlink(missing_ok=True)
        written.append(dest / name)
    return written
