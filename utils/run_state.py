"""A run's files and state: names, random states, checkpoints (save, load, restore), history.csv.

Everything `utils.run_loop` needs to write a run so that it continues *bit for bit*: the
checkpoint is rotated and written atomically, the newest loadable one is found on resume,
and the restore puts networks, optimisers, scalers, pools and RNGs back as they were.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from utils import speed
from utils.ch06util import LOSS_KEYS
from utils.checkpoints import (
    CheckpointError,
    NewerCheckpointError,
    atomic_save,
    check_training_checkpoint,
    holds_generators,
    load_state_dict_checked,
    safe_load,
)
from utils.cli import UserError
from utils.ownership import RECORD, NotOursError, OwnedFiles

PathLike = str | os.PathLike

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
GEN_BLACK = "gen_black.pth"  # gen_A: makes domain A (black hair) from B
GEN_BLOND = "gen_blond.pth"  # gen_B: makes domain B (blond hair) from A
HISTORY = "history.csv"
SAMPLES = "samples"
HISTORY_COLUMNS = ("iteration", "epoch", *LOSS_KEYS, "lr", "seconds")
CHECKPOINT_FORMAT = 1


# ------------------------------------------------------------------------------ RNG state
def rng_state() -> dict[str, Any]:
    """Every global RNG as tensors and plain values, loadable with weights_only=True."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"].tolist()), p["gauss_next"]))


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# ----------------------------------------------------------------------------- checkpoints
# What a checkpoint must hold to be resumed ("data", the record of the domains, came later:
# a checkpoint without it is resumed without that check).
CHECKPOINT_ENTRIES = ("iteration", "epoch", "position", "seconds", "config", "gen_A", "gen_B", "disc_A",
                      "disc_B", "opt_disc", "opt_gen", "d_scaler", "g_scaler", "pools", "rng")


def load_latest_checkpoint(out: PathLike) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint in `out` that loads, or None when there is none.

    A damaged `checkpoint.pt` (a save cut short by something harsher than an exception,
    a sync tool's partial copy, a file lacking entries) is reported, renamed to
    `checkpoint.damaged.pt` and the previous one is used. If no file loads, a `CheckpointError`
    names them all. One written by a newer version of this code is not damaged: that is said
    at once, and nothing is renamed.
    """
    out = Path(out)
    candidates = [p for p in (out / CHECKPOINT, out / PREVIOUS_CHECKPOINT) if p.is_file()]
    errors = []
    for path in candidates:
        try:
            state = safe_load(path)
            check_training_checkpoint(state, path, formats=[CHECKPOINT_FORMAT], required=CHECKPOINT_ENTRIES)
        except NewerCheckpointError:
            raise
        except CheckpointError as error:
            errors.append(str(error))
            continue
        if errors:
            damaged = out / DAMAGED_CHECKPOINT
            os.replace(candidates[0], damaged)
            claim(out, damaged.name)
            warnings.warn(f"{candidates[0]} cannot be loaded ({errors[0]}); it was renamed to "
                          f"{damaged.name} and training resumes from {path}.", stacklevel=2)
        return state, path
    if errors:
        raise CheckpointError(
            "No checkpoint in " + str(out) + " can be loaded:\n  " + "\n  ".join(errors)
            + "\nStart afresh in another --out folder (or without --resume after moving these)."
        )
    return None


def save_checkpoint(state: dict[str, Any], out: Path) -> Path:
    """Rotate `checkpoint.pt` to `checkpoint.prev.pt`, then write the new one atomically.

    At every moment one complete checkpoint exists: the old one is only renamed, and the
    new one appears under its name only once fully written (`atomic_save`). Both are marked
    as the run's (`utils.ownership`).
    """
    path = out / CHECKPOINT
    if path.is_file():
        os.replace(path, out / PREVIOUS_CHECKPOINT)
    atomic_save(state, path)
    claim(out, CHECKPOINT, PREVIOUS_CHECKPOINT)
    return path


# ----------------------------------------------------------------------------- ownership
OWNER = "utils.train"  # how a run marks the files it writes (utils.ownership)
DAMAGED_CHECKPOINT = "checkpoint.damaged.pt"


def claim(out: Path, *names: str) -> None:
    """Mark `names` in `out` (just written) as the run's, so that a later session may replace them."""
    record = OwnedFiles.load(out)
    for name in names:
        record.claim(name, OWNER)
    record.save()


def _pair_made_here(out: Path) -> bool:
    """Whether `out`'s gen_black.pth / gen_blond.pth are exactly the generators of a checkpoint
    there (a run folder written before runs marked their files)."""
    try:
        pair = {"gen_A": safe_load(out / GEN_BLACK), "gen_B": safe_load(out / GEN_BLOND)}
    except CheckpointError:
        return False
    if not all(isinstance(state, dict) for state in pair.values()):
        return False
    return any(holds_generators(out / name, pair) is not None for name in (CHECKPOINT, PREVIOUS_CHECKPOINT))


def refuse_foreign_outputs(out: Path, *, resuming: bool, force: bool) -> None:
    """Before a session writes anything: refuse when `out` holds files under the run's names that
    this run did not write (`utils.ownership`, the project's one rule), unless `force`.

    * gen_black.pth / gen_blond.pth: the run's only when marked as its own or identical to the
      generators of a checkpoint beside them; a fresh run never replaces a pair (the book's
      pair from `make weights`, a pair copied from elsewhere, a finished run's without its
      checkpoint);
    * history.csv and sample grids: on a fresh start, only those marked as a run's own (a
      session cut short before its first checkpoint); beside the checkpoint being resumed, the
      run's.
    """
    if force:
        return
    record = OwnedFiles.load(out)
    gens = [name for name in (GEN_BLACK, GEN_BLOND) if (out / name).exists()]
    if resuming:
        unmarked = [name for name in gens if not record.owns(name, OWNER)]
        foreign = unmarked if unmarked and not _pair_made_here(out) else []
        why = "generators that no checkpoint in this folder holds: the book's pair from `make weights`?"
    else:
        foreign = gens + record.foreign([HISTORY], OWNER)
        samples = out / SAMPLES
        if samples.is_dir():
            names = sorted(f"{SAMPLES}/{p.name}" for p in samples.iterdir() if not p.name.startswith("."))
            foreign += record.foreign(names, OWNER)
        elif samples.exists():  # a file where the run keeps its sample grids
            foreign.append(SAMPLES)
        why = ("a pair without the checkpoint of the run that made them: the book's pair from `make "
               "weights`, or a pair of your own?" if gens else "files of another program or of yours?")
    if foreign:
        listed = ", ".join(foreign[:4]) + (" ..." if len(foreign) > 4 else "")
        raise NotOursError(
            f"{out} already holds {listed}, which this run did not write ({why}) and would replace: "
            "nothing was written. Train into another --out folder, move them elsewhere, or pass "
            "--force (force=True) to replace them.")


# Temporary files a run writes and renames (`atomic_save`, `History`, the ownership record):
# left behind only when the process was killed mid-write.
_TEMPORARIES = tuple(f".{name}.*.tmp" for name in (CHECKPOINT, GEN_BLACK, GEN_BLOND, RECORD)) + (
    f".{HISTORY}.tmp",)


def remove_stale_temporaries(out: Path) -> str | None:
    """Delete what a killed session left half-written in `out` (a checkpoint's temporary file
    holds as much as a checkpoint: 22 MB for the demo's run). Called while the session holds
    the folder's lock, so no other session of ours is writing them. A line saying what went."""
    found = sorted({p for pattern in _TEMPORARIES for p in out.glob(pattern) if p.is_file()})
    if not found:
        return None
    size = sum(p.stat().st_size for p in found)
    for path in found:
        path.unlink(missing_ok=True)
    names = ", ".join(p.name for p in found[:3]) + (" ..." if len(found) > 3 else "")
    return (f"Removed {len(found)} unfinished file(s) ({size / 2**20:.1f} MB) that a session killed while "
            f"saving left in {out}: {names}.")


# --------------------------------------------------------------------------------- history
class HistoryError(UserError, ValueError):
    """A `history.csv` that cannot be read as the run's loss history."""


def read_history(path: Path) -> pd.DataFrame:
    """The run's `history.csv`, read defensively: a spreadsheet's re-save (`;` or tab between the
    values, decimal commas) is understood and said in one line; anything else that is not a loss
    history is one clear error saying what to do (nothing is lost: the checkpoint is the run)."""
    fix = (f"Move it aside (rename it), then resume again: the run continues from its checkpoint "
           f"and a new {path.name} starts there.")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = handle.readline()
    except UnicodeDecodeError:
        raise HistoryError(f"{path} is not a text file, so not the run's loss history. {fix}") from None
    sep = next((s for s in (",", ";", "\t") if s in header), ",")
    try:
        frame = pd.read_csv(path, sep=sep, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(HISTORY_COLUMNS))
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise HistoryError(f"{path} cannot be read as the run's loss history ({type(error).__name__}). "
                           f"{fix}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("iteration", *LOSS_KEYS) if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns[:6])) or "none"
        raise HistoryError(f"{path} lacks the column(s) {', '.join(missing)} of the run's loss history "
                           f"(its columns: {found}). {fix}")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):  # decimal commas ("0,5"): a European spreadsheet
            frame[column] = pd.to_numeric(frame[column].astype(str).str.replace(",", ".", regex=False),
                                          errors="coerce")
    if frame["iteration"].isna().any():
        raise HistoryError(f"{path} has rows without an iteration number. {fix}")
    if sep != ",":
        print(f"note: {path} had been saved with {'semicolons' if sep == ';' else 'tabs'} between the "
              "values (by a spreadsheet?): read as such, and written back with commas.")
    frame["iteration"] = frame["iteration"].astype("int64")
    return frame[[c for c in HISTORY_COLUMNS if c in frame.columns]]


class History:
    """`history.csv`, one row per iteration, appended across resumes without duplicates; marked
    as the run's own after every write (`utils.ownership`)."""

    def __init__(self, path: Path, *, keep_through: int | None, write: bool):
        self.path, self.write = path, write
        frame = pd.DataFrame(columns=list(HISTORY_COLUMNS))
        if keep_through is not None and write and path.is_file():  # rank 0 alone keeps it
            old = read_history(path)
            frame = old[old["iteration"] <= keep_through]
        self.frames = [frame]
        if write:
            tmp = path.with_name(f".{path.name}.tmp")
            frame.to_csv(tmp, index=False)
            os.replace(tmp, path)
            claim(path.parent, path.name)

    def append(self, rows: pd.DataFrame) -> None:
        self.frames.append(rows)
        if self.write:
            rows.to_csv(self.path, mode="a", header=False, index=False)
            claim(self.path.parent, self.path.name)

    def frame(self) -> pd.DataFrame:
        frames = [f for f in self.frames if len(f)]
        if not frames:
            return self.frames[0].reset_index(drop=True)
        return pd.concat(frames, ignore_index=True)


def restore(state, source, config, nets, opt_disc, opt_gen, d_scaler, g_scaler, pool_A, pool_B,
             device, ctx) -> None:
    for name, net in nets.items():
        load_state_dict_checked(net, state[name], f"{source} [{name}]")
    opt_disc.load_state_dict(state["opt_disc"])
    opt_gen.load_state_dict(state["opt_gen"])
    for opt in (opt_disc, opt_gen):  # a --fast-gpu checkpoint may be channels-last: match the layout
        speed.match_optimizer_layout(opt)
        for group in opt.param_groups:  # the config's (utils.run_record says when they differ)
            group["betas"] = tuple(config.betas)
    for scaler, key in ((d_scaler, "d_scaler"), (g_scaler, "g_scaler")):
        if scaler.is_enabled() and state[key]:
            scaler.load_state_dict(state[key])
    pools = state["pools"]
    mine = pools[ctx.rank] if len(pools) == ctx.world_size else pools[0]
    for pool, key in ((pool_A, "pool_A"), (pool_B, "pool_B")):
        pool.load_state_dict(mine[key], device)
        pool.size = config.pool_size  # another size only with --resume-anyway (utils.run_record)
        pool.images = pool.images[:pool.size]
    set_rng_state(state["rng"])
