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
from utils.checkpoints import CheckpointError, atomic_save, load_state_dict_checked, safe_load
from utils.distributed import Dist
from utils.settings import TrainConfig

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
def load_latest_checkpoint(out: PathLike) -> tuple[dict[str, Any], Path] | None:
    """The newest checkpoint in `out` that loads, or None when there is none.

    A damaged `checkpoint.pt` (a save cut short by something harsher than an exception,
    a sync tool's partial copy) is reported, renamed to `checkpoint.damaged.pt` and the
    previous one is used. If no file loads, a `CheckpointError` names them all.
    """
    out = Path(out)
    candidates = [p for p in (out / CHECKPOINT, out / PREVIOUS_CHECKPOINT) if p.is_file()]
    errors = []
    for path in candidates:
        try:
            state = safe_load(path)
            if not (isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT):
                raise CheckpointError(f"{path} is not a training checkpoint of utils.train.")
        except CheckpointError as error:
            errors.append(str(error))
            continue
        if errors:
            damaged = out / "checkpoint.damaged.pt"
            os.replace(candidates[0], damaged)
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
    new one appears under its name only once fully written (`atomic_save`).
    """
    path = out / CHECKPOINT
    if path.is_file():
        os.replace(path, out / PREVIOUS_CHECKPOINT)
    return atomic_save(state, path)


# --------------------------------------------------------------------------------- history
class History:
    """`history.csv`, one row per iteration, appended across resumes without duplicates."""

    def __init__(self, path: Path, *, keep_through: int | None, write: bool):
        self.path, self.write = path, write
        frame = pd.DataFrame(columns=list(HISTORY_COLUMNS))
        if keep_through is not None and write and path.is_file():  # rank 0 alone keeps it
            old = pd.read_csv(path)
            frame = old[old["iteration"] <= keep_through]
        self.frames = [frame]
        if write:
            tmp = path.with_name(f".{path.name}.tmp")
            frame.to_csv(tmp, index=False)
            os.replace(tmp, path)

    def append(self, rows: pd.DataFrame) -> None:
        self.frames.append(rows)
        if self.write:
            rows.to_csv(self.path, mode="a", header=False, index=False)

    def frame(self) -> pd.DataFrame:
        frames = [f for f in self.frames if len(f)]
        if not frames:
            return self.frames[0].reset_index(drop=True)
        return pd.concat(frames, ignore_index=True)


def shape_record(config: TrainConfig, ctx: Dist) -> dict[str, Any]:
    return {"num_features": config.num_features, "num_residuals": config.num_residuals,
            "generator": config.generator,
            "disc_features": list(config.discriminator_features()), "image_size": config.image_size,
            "batch_size": config.batch_size, "seed": config.seed,
            "random_pairing": config.random_pairing, "world_size": ctx.world_size}


def restore(state, source, config, nets, opt_disc, opt_gen, d_scaler, g_scaler, pool_A, pool_B,
             device, ctx) -> None:
    for name, net in nets.items():
        load_state_dict_checked(net, state[name], f"{source} [{name}]")
    opt_disc.load_state_dict(state["opt_disc"])
    opt_gen.load_state_dict(state["opt_gen"])
    for opt in (opt_disc, opt_gen):  # a --fast-gpu checkpoint may be channels-last: match the layout
        speed.match_optimizer_layout(opt)
    for scaler, key in ((d_scaler, "d_scaler"), (g_scaler, "g_scaler")):
        if scaler.is_enabled() and state[key]:
            scaler.load_state_dict(state[key])
    pools = state["pools"]
    mine = pools[ctx.rank] if len(pools) == ctx.world_size else pools[0]
    pool_A.load_state_dict(mine["pool_A"], device)
    pool_B.load_state_dict(mine["pool_B"], device)
    set_rng_state(state["rng"])
    saved, now = state["config"], shape_record(config, ctx)
    changed = [f"{k} {saved[k]} -> {now[k]}" for k in ("image_size", "batch_size", "seed",
                                                         "random_pairing", "world_size")
               if saved.get(k) != now[k]]
    if changed and ctx.main:
        warnings.warn(f"Resuming {source} with other settings ({', '.join(changed)}): training "
                      "continues, but not as the original run would have.", stacklevel=3)
