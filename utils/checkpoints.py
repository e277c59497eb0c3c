"""Saving and loading weights safely: atomic writes, `weights_only` loads, clear errors.

A reader's runtime can die mid-save (Colab disconnects, laptops sleep) and readers load
files they downloaded. So every save goes to a temporary file that is renamed into place
only once complete, and every load uses `weights_only=True`, which never runs pickled code.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.ch06util import Generator, generator_variant
from utils.cli import UserError, command, python_command
from utils.locks import OUTPUT_LOCK, hold
from utils.ownership import OwnedFiles, output_folder

PathLike = str | os.PathLike
OWNER = "utils.checkpoints"  # how the files it writes are marked (utils.ownership)


class CheckpointError(UserError, RuntimeError):
    """A weights file that cannot be used, with the reason and what to do about it."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class DiskFullError(UserError, OSError):
    """No room on the disk for a save; no half-written file was left behind."""


def atomic_save(obj: Any, path: PathLike) -> Path:
    """`torch.save` to a temporary file beside `path`, then rename it over `path`.

    The rename is atomic on POSIX and Windows (`os.replace`), so `path` always holds
    either the old complete file or the new complete file, never half of one. A full disk
    (torch reports it as a RuntimeError "file write failed", the OS as ENOSPC) becomes a
    `DiskFullError` saying where and about how much room the file needs.
    """
    import errno
    import shutil

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
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if not isinstance(error, (OSError, RuntimeError)) or isinstance(error, UserError):
            raise

        def tensor_bytes(value: Any) -> int:  # what the file holds, roughly: its tensors
            if isinstance(value, torch.Tensor):
                return value.untyped_storage().nbytes()
            if isinstance(value, dict):
                return sum(tensor_bytes(v) for v in value.values())
            if isinstance(value, (list, tuple)):
                return sum(tensor_bytes(v) for v in value)
            return 0

        needed = tensor_bytes(obj) + (1 << 16)
        free = shutil.disk_usage(path.parent).free
        if getattr(error, "errno", None) not in (errno.ENOSPC, errno.EDQUOT) and free >= needed:
            raise  # not a full disk: a genuine error keeps its traceback
        raise DiskFullError(
            f"no space left on {path.parent} (needed about {max(1, round(needed / 2**20))} MB for "
            f"{path.name}, {free / 2**20:.0f} MB free). Free some disk space (old runs in files/ are the "
            "usual culprits), then run the same command again (with --resume for a training run): "
            "no half-written file was left, and the files already there are complete."
        ) from error
    return path


def safe_load(path: PathLike, map_location: Any = "cpu", *, mmap: bool = False) -> Any:
    """`torch.load(..., weights_only=True)` with errors that say what went wrong.

    `mmap=True` reads only the tensors that are used: for one entry of a training checkpoint
    that holds four networks and their optimisers."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No weights file at {path}. Train first (notebook 03 or `python -m utils.train`) "
            "or put the chapter's published file there."
        )
    try:
        with warnings.catch_warnings():
            # A file pickled outside torch.save (protocol 3+, as plain `pickle.dump` writes) makes
            # torch warn about its own unpickler and ask for an issue to be filed: nothing a
            # reader can act on. The load goes on, and fails, if it must, with our message below.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise CheckpointError(f"Cannot read {path} as PyTorch weights: {unreadable_reason(path, error)}"
                              ) from error


def looks_like_html(head: bytes) -> bool:
    """Whether the first bytes of a file are a web page: what a dead link or a sign-in page returns."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--")) or (
        text.startswith(b"<") and b"<html" in text[:1024])


def unreadable_reason(path: PathLike, error: BaseException) -> str:
    """Why `torch.load(path, weights_only=True)` failed, in the reader's terms.

    Torch's own message for a refused pickle advises `weights_only=False`, which would run
    whatever code the file holds: it is never passed on.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(2048)
    except OSError:
        head = b""
    if looks_like_html(head):
        return ("it is a web page (HTML), not weights: the download returned an error or sign-in "
                "page instead of the file. Download it again (open the address in a browser to see "
                "what it says).")
    if isinstance(error, pickle.UnpicklingError) or "Weights only load failed" in str(error):
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f" (it refers to {found.group(1)})" if found else ""
        return (f"it holds Python objects beyond tensors and plain values{what}, and loading them "
                "could run code, so it was not loaded. Use a file saved as a state_dict "
                "(`torch.save(model.state_dict(), ...)`) from a source you trust.")
    if not head:
        return "it is empty (0 bytes): an interrupted download or save? Download or train it again."
    detail = str(error).split(". ")[0].strip().rstrip(".")
    return (f"it is damaged or incomplete ({type(error).__name__}{': ' + detail if detail else ''}): an "
            "interrupted download or save? Download or train it again.")


def load_state_dict_checked(model: nn.Module, state: dict, source: PathLike, *, assign: bool = False
                            ) -> nn.Module:
    """`load_state_dict(strict=True)`, turning key and shape mismatches into one clear message.

    `assign=True` makes the file's tensors the model's own (for a model built on the "meta"
    device: checked without allocating or initialising a second copy).
    """
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
    model.load_state_dict(state, strict=True, assign=assign)
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
    if is_training_checkpoint(state):
        raise CheckpointError(_training_checkpoint_message(path))
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
    check_finite(state, path)
    return gen.to(device).eval()


def not_finite(state: Mapping[str, Any]) -> list[str]:
    """The names of the floating-point tensors of a state_dict that hold a NaN or an infinity."""
    return [name for name, value in state.items()
            if isinstance(value, torch.Tensor) and value.is_floating_point()
            and not bool(torch.isfinite(value).all())]


def check_finite(state: Mapping[str, Any], source: PathLike) -> None:
    """Refuse weights with NaN or Inf in them: a diverged run (or an overflowing float16 step)
    saves such files, and a generator made of them turns every picture black or into noise
    while reporting success."""
    bad = not_finite(state)
    if bad:
        tensors = sum(isinstance(v, torch.Tensor) for v in state.values())
        raise CheckpointError(
            f"{source} holds weights that are not finite numbers (NaN or Inf in {len(bad)} of {tensors} "
            f"tensors, e.g. {bad[0]}): the run that saved them diverged. Use an earlier save (a run's "
            "checkpoint.prev.pt: `python -m utils.checkpoints extract FILE --out FOLDER`) or train "
            "again (a lower --lr; --no-mixed-precision rules float16 out).")


# extra code – a training checkpoint given where a generator is expected
# `utils.train` saves `checkpoint.pt` as a dict holding the four networks' state_dicts under
# these keys (gen_A makes black-haired faces: gen_black.pth; gen_B blond ones: gen_blond.pth).
CHECKPOINT_GENERATORS = {"gen_A": "gen_black.pth", "gen_B": "gen_blond.pth"}


def is_training_checkpoint(state: Any) -> bool:
    """Whether `state` is a `utils.train` checkpoint (networks, optimisers, ...), not one network."""
    return isinstance(state, dict) and all(isinstance(state.get(k), dict) for k in CHECKPOINT_GENERATORS)


def _training_checkpoint_message(path: PathLike) -> str:
    path = Path(path)
    return (f"{path} is a training checkpoint of utils.train (the four networks, optimisers, data "
            "position, ...), not a generator's state_dict. The generators are saved beside it as "
            f"{path.parent / 'gen_black.pth'} and {path.parent / 'gen_blond.pth'}: load those; if they "
            f"are missing, write them with `{python_command('utils.checkpoints', 'extract', path)}`.")


class NewerCheckpointError(CheckpointError):
    """A checkpoint written by a newer version of this code: not damaged, only not readable here."""


def check_training_checkpoint(state: Any, path: PathLike, *, formats: Sequence[int],
                              required: Sequence[str]) -> None:
    """Refuse a `utils.train` checkpoint this code cannot resume, saying why in the reader's terms:
    not a training checkpoint at all, written by a newer version (its `format` is above every one
    of `formats`, those this code reads), or lacking some of the `required` entries (cut short,
    or edited)."""
    if not isinstance(state, dict) or not ("format" in state or is_training_checkpoint(state)):
        what = type(state).__name__ if not isinstance(state, dict) else "other entries"
        raise CheckpointError(f"{path} is not a training checkpoint of utils.train (it holds {what}): "
                              "move it out of the run folder, or start the run in another --out folder.")
    found = state.get("format")
    if isinstance(found, int) and not isinstance(found, bool) and found > max(formats):
        raise NewerCheckpointError(f"{path} was written by a newer version of this code (checkpoint format "
                              f"{found}; this one reads up to {max(formats)}): update the repository "
                              "(`git pull`) to resume it. Its generators can be taken out with "
                              "`python -m utils.checkpoints extract`.")
    missing = [key for key in required if key not in state]
    if found not in formats or missing:
        what = (f"it lacks {', '.join(repr(k) for k in missing)}" if missing
                else f"its format is {found!r}, not one of {list(formats)}")
        raise CheckpointError(f"{path} cannot be resumed: {what} (written by another program, or an "
                              "edited or damaged file). Start afresh in another --out folder; its "
                              "generators may still be taken out with `python -m utils.checkpoints extract`.")


def holds_generators(checkpoint: PathLike, generators: Mapping[str, Mapping[str, torch.Tensor]]
                     ) -> dict[str, Any] | None:
    """The `config` record of `checkpoint` when it is a `utils.train` checkpoint whose generators
    are exactly `generators` ("gen_A" / "gen_B" -> state_dict); None otherwise.

    Whatever a run recorded (its image size, say) describes only the generators it made: after
    `make weights --force` over a trained run, or a pair copied in from elsewhere, the checkpoint
    beside the generators is another model's, and its record must not be applied to them.
    """
    state = _state_holding(checkpoint, generators)
    if state is None:
        return None
    config = state.get("config")
    return config if isinstance(config, dict) else {}


def trained_folders(checkpoint: PathLike, generators: Mapping[str, nn.Module]) -> list[Path] | None:
    """The domain folders the run of `checkpoint` trained on, if that run made `generators`
    ("gen_A" / "gen_B" -> the loaded networks); None otherwise, or when it kept no record of them."""
    state = _state_holding(checkpoint, {k: g.state_dict() for k, g in generators.items()})
    data = state.get("data") if state is not None else None
    try:
        return [Path(folder) for side in ("A", "B") for folder in data[side]["folders"]]
    except (TypeError, KeyError):
        return None


def _state_holding(checkpoint: PathLike, generators: Mapping[str, Mapping[str, torch.Tensor]]
                   ) -> dict[str, Any] | None:
    """The training checkpoint's contents when its generators are exactly `generators`, else None."""
    path = Path(checkpoint)
    if not path.is_file():
        return None
    try:
        state = safe_load(path, mmap=True)  # only the tensors compared are read
    except CheckpointError:
        return None
    if not is_training_checkpoint(state):
        return None
    for key, weights in generators.items():
        saved = state.get(key)
        if not isinstance(saved, dict) or saved.keys() != weights.keys():
            return None
        for name, value in weights.items():
            theirs = saved[name]
            if not (isinstance(theirs, torch.Tensor) and isinstance(value, torch.Tensor)
                    and theirs.shape == value.shape and torch.equal(theirs, value.detach().cpu())):
                return None
    return state


def trained_image_size(checkpoint: PathLike, generators: Mapping[str, nn.Module]) -> int | None:
    """The image size recorded in `checkpoint` if that run made `generators` ("gen_A" / "gen_B"
    -> the loaded networks), else None (see `holds_generators`)."""
    config = holds_generators(checkpoint, {k: g.state_dict() for k, g in generators.items()})
    size = (config or {}).get("image_size")
    return int(size) if isinstance(size, int) and not isinstance(size, bool) else None


def extract_generators(checkpoint: PathLike, out: PathLike | None = None, *, force: bool = False
                       ) -> list[Path]:
    """Write `gen_black.pth` / `gen_blond.pth` (state_dicts) from a training `checkpoint.pt`.

    They go beside the checkpoint unless `out` is given; existing files are kept unless
    `force`, so a newer pair saved by the run is never replaced by an older checkpoint's.
    """
    checkpoint = Path(checkpoint)
    out = output_folder(out, "--out", create=False) if out is not None else checkpoint.parent
    state = safe_load(checkpoint)
    if not is_training_checkpoint(state):
        raise CheckpointError(f"{checkpoint} is not a training checkpoint of utils.train (it has no "
                              "gen_A / gen_B); if it is a generator's state_dict, load it directly "
                              "with load_generator.")
    targets = {key: out / name for key, name in CHECKPOINT_GENERATORS.items()}
    taken = [str(p) for p in targets.values() if p.exists()]
    if taken and not force:
        raise CheckpointError(f"{' and '.join(taken)} already exist{'s' if len(taken) == 1 else ''}: "
                              "nothing was written. Pass --force to replace them with the "
                              f"checkpoint's generators, or --out another folder.")
    for key in targets:  # both checked before either is written: never half a pair
        generator_shape(state[key])  # a clear error if it is not a Generator's state_dict
        check_finite(state[key], f"{checkpoint} [{key}]")
    output_folder(out, "--out")
    with hold(out, OUTPUT_LOCK, advice="extract again once it is done, or --out another folder"):
        record = OwnedFiles.load(out)  # a training run writing this folder would have the lock
        for key, target in targets.items():
            atomic_save(state[key], target)
            record.claim(target.name, OWNER)
        record.save()
    return list(targets.values())


@command
def main(argv: Sequence[str] | None = None) -> int:
    """`python -m utils.checkpoints extract CHECKPOINT [--out FOLDER] [--force]`."""
    parser = argparse.ArgumentParser(prog="python -m utils.checkpoints",
                                     description="Weights files: take the generators out of a "
                                                 "training checkpoint.")
    sub = parser.add_subparsers(dest="command", required=True)
    extract = sub.add_parser("extract", help="write gen_black.pth / gen_blond.pth from a checkpoint.pt")
    extract.add_argument("checkpoint", type=Path, help="a checkpoint.pt written by utils.train")
    extract.add_argument("--out", type=Path, default=None, help="folder (default: the checkpoint's)")
    extract.add_argument("--force", action="store_true", help="replace existing gen_*.pth files")
    args = parser.parse_args(argv)
    for path in extract_generators(args.checkpoint, args.out, force=args.force):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
