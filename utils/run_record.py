"""What shapes a training run: recorded in every checkpoint, compared when the run is resumed.

(Extra code – not in the book.) `--resume` once took some settings from the checkpoint and
others from the command line without a word: `--pool-size 50` on a run trained without a
pool was ignored, `--lr` silently applied, `--preset paper` resumed without its pool. Now
every setting that shapes the run is recorded (`RUN_SHAPING`, one table: add a setting
there and it is recorded and compared), and a resumed session is the run it says:

* a setting the reader did not give (a flag left out on the command line) is the run's own,
  taken from the checkpoint: `--resume` alone continues the run exactly as it was started;
* a setting given with another value than the run's is either refused, with the list of
  differences (the networks, the order of the data or the pool would not be the run's), or
  applied from the next iteration with one line saying so and why (the learning rate, the
  loss weights, the schedule: what a reader changes on purpose to rescue or extend a run).
  `resume_anyway` (`--resume-anyway`) turns a refusal into such a line, except for the
  networks' shape, which a checkpoint of another shape cannot be loaded into.

The record is the checkpoint's `config` entry (which also tells `translate` and `evaluate`
the image size a run was trained at). A checkpoint written before a setting was recorded
lacks it: the value given now is used, and a line says which were not recorded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.settings import TrainConfig
from utils.train_data import ResumeMismatchError


@dataclass(frozen=True)
class Rule:
    """What a resumed session does when it is given another value of a setting than the run's."""

    change: str  # "shape": never (a checkpoint of another shape does not load); "refuse"; "apply"
    why: str


RUN_SHAPING: dict[str, Rule] = {
    "num_features": Rule("shape", "the networks' width"),
    "num_residuals": Rule("shape", "the generators' depth"),
    "generator": Rule("shape", "the generators' variant"),
    "disc_features": Rule("shape", "the discriminators' widths"),
    "image_size": Rule("refuse", "the size the networks learnt at"),
    "batch_size": Rule("refuse", "the run's place in the data counts in batches of this size"),
    "seed": Rule("refuse", "it fixes the order of the pairs and their flips"),
    "random_pairing": Rule("refuse", "it fixes which B image each A image meets"),
    "pool_size": Rule("refuse", "the pool of earlier fakes is part of the run's state"),
    "lr": Rule("apply", "the optimisers continue at this learning rate, their momentum kept"),
    "betas": Rule("apply", "the optimisers continue with these betas, their momentum kept"),
    "lambda_cycle": Rule("apply", "the losses are weighed so from the next iteration"),
    "lambda_identity": Rule("apply", "the losses are weighed so from the next iteration"),
    "decay_from": Rule("apply", "the learning-rate schedule of the remaining iterations"),
    "iterations": Rule("apply", "the run's total length"),
    "epochs": Rule("apply", "the run's total length"),
    "mixed_precision": Rule("apply", "the precision of the remaining iterations"),
    "world_size": Rule("apply", "the remaining data is shared among this many processes, so the "
                                "order differs from a single session's"),
}


def _plain(value: Any) -> Any:
    """A value as the checkpoint stores it (tuples as lists: `weights_only` loads plain types)."""
    return list(value) if isinstance(value, tuple) else value


def record(config: TrainConfig, world_size: int = 1) -> dict[str, Any]:
    """Every run-shaping setting of `config` (the checkpoint's `config` entry)."""
    values = {name: getattr(config, name) for name in RUN_SHAPING if hasattr(config, name)}
    values["disc_features"] = config.discriminator_features()  # the widths, even when derived
    values["world_size"] = world_size
    return {name: _plain(value) for name, value in values.items()}


def _config_value(name: str, value: Any) -> Any:
    return tuple(value) if name in ("betas", "disc_features") and isinstance(value, list) else value


def _show(value: Any) -> str:
    return "off" if value is None else repr(tuple(value) if isinstance(value, list) else value)


def reconcile(config: TrainConfig, saved: Any, world_size: int, source: Path | str
              ) -> tuple[TrainConfig, list[str]]:
    """The config a resumed session runs with, and one line per setting that differs from the run.

    `saved` is the checkpoint's record. Settings not in `config.explicit` (not given by the
    reader) take the run's values. Raises `ResumeMismatchError` listing the differences a
    resume cannot honour (see the module docstring).
    """
    saved = saved if isinstance(saved, dict) else {}
    now = record(config, world_size)
    given = config.explicit
    taken: dict[str, Any] = {}
    lines, refused, unrecorded = [], [], []
    for name, rule in RUN_SHAPING.items():
        if name not in saved:
            if name != "world_size":
                unrecorded.append(name)
            continue
        was, is_ = _plain(saved[name]), now[name]
        if was == is_:
            continue
        if given is not None and name not in given and name != "world_size":
            taken[name] = _config_value(name, was)  # left out: the run's own value
            continue
        change = f"{name} {_show(was)} -> {_show(is_)}"
        if rule.change == "apply":
            lines.append(f"note: resuming with {change}, applied from the next iteration: {rule.why}.")
        else:
            refused.append((rule, f"{change} ({rule.why})"))
    if refused:
        listed = "; ".join(text for _, text in refused)
        if any(rule.change == "shape" for rule, _ in refused) or not config.resume_anyway:
            anyway = ("" if any(rule.change == "shape" for rule, _ in refused)
                      else "; --resume-anyway (resume_anyway=True) continues with the new ones")
            raise ResumeMismatchError(
                f"{source} was trained with other settings: {listed}. Leave them out (--resume takes "
                "them from the checkpoint) or give the run's own, or start a new run in another "
                f"--out folder{anyway}.")
        lines += [f"note: resuming with {text} anyway (--resume-anyway): the run is no longer the one "
                  "a single session would have made." for _, text in refused]
    if taken:
        config = dataclasses.replace(config, **taken)
    if unrecorded and saved:
        lines.append(f"note: {source} was written by an earlier version that did not record "
                     f"{', '.join(unrecorded)}: the values given now are used.")
    return config, lines
