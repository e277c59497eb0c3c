"""Every numeric setting of a training run, checked in one place (`check_settings`).

(Extra code – not in the book.) `utils.settings.TrainConfig` calls `check_settings` when it is
made, so a nonsense value fails at once with the allowed range, not an hour into a run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from utils.ch06util import check_generator_variant, variant_has_mask
from utils.cli import SettingError


def patch_side(image_size: int, disc_features: Sequence[int]) -> int:
    """Side of the discriminator's output map for `image_size` (0 when too small).

    The chapter's `Discriminator`: a 4x4 stride-2 convolution, a Block per further width
    (stride 1 for the last, else 2), a 4x4 stride-1 convolution; each pads 1 by reflection,
    which needs an input of at least 2 pixels.
    """
    side = image_size
    strides = [2] + [1 if f == disc_features[-1] else 2 for f in disc_features[1:]] + [1]
    for stride in strides:
        if side < 2:
            return 0
        side = (side + 2 - 4) // stride + 1
    return side


_NO_FLAG = frozenset({"log_every", "lambda_cycle", "betas", "disc_features", "lambda_mask", "lambda_mask_tv",
                      "mask_start"})


def check_settings(config: Any) -> None:
    """Every numeric setting of a run, checked in one place, with the allowed range.

    (Extra code – not in the book.) A nonsense value (`--num-residuals -1`, `--iterations 0`)
    would otherwise train something else than asked, or fail an hour later. The CLI flag of
    a field is its name with dashes (log_every, lambda_cycle, betas, disc_features have none).
    """

    def bad(name: str, allowed: str, value: Any) -> SettingError:
        flag = "" if name in _NO_FLAG else f" (--{name.replace('_', '-')})"
        return SettingError(f"{name}{flag} must be {allowed}, got {value!r}.")

    try:
        check_generator_variant(config.generator)
    except ValueError as error:
        raise SettingError(f"generator (--generator): {error}") from None

    def integer(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    def number(value: Any) -> bool:
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
            and math.isfinite(value)

    # whole numbers, and the smallest value each may take
    at_least = {"batch_size": 1, "checkpoint_every": 1, "log_every": 1, "num_features": 1,
                # 0 blocks would leave an encoder-decoder without the generator's transforming
                # part (the chapter's Generator is a ResNet generator): at least one block.
                "num_residuals": 1, "pool_size": 0, "sample_every": 0, "seed": 0}
    for name, low in at_least.items():
        value = getattr(config, name)
        if not integer(value) or value < low:
            raise bad(name, f"a whole number of at least {low}", value)
    for name in ("iterations", "epochs"):
        value = getattr(config, name)
        if value is not None and (not integer(value) or value < 1):
            raise bad(name, "a whole number of at least 1 (or not given)", value)
    if config.workers is not None and (not integer(config.workers) or config.workers < 0):
        raise bad("workers", "a whole number of at least 0 (or not given)", config.workers)
    if config.minutes is not None and (not number(config.minutes) or config.minutes <= 0):
        raise bad("minutes", "a number of minutes above 0 (or not given: no time limit)", config.minutes)
    if not number(config.lr) or config.lr <= 0:
        raise bad("lr", "a learning rate above 0 (chapter 1e-5, paper 2e-4)", config.lr)
    for name in ("lambda_cycle", "lambda_identity", "lambda_mask", "lambda_mask_tv"):
        value = getattr(config, name)
        if not number(value) or value < 0:
            raise bad(name, "a weight of at least 0 (0 = off)", value)
    if (config.lambda_mask or config.lambda_mask_tv or config.mask_start is not None) \
            and not variant_has_mask(config.generator):
        raise SettingError(f"lambda_mask, lambda_mask_tv and mask_start are for a generator's mask; "
                           f"generator {config.generator!r} has none:"
                           " choose a mask variant or leave them out.")
    if config.mask_start is not None and not (number(config.mask_start) and 0 < config.mask_start < 1):
        raise bad("mask_start", "a share between 0 and 1 (exclusive), or not given", config.mask_start)
    betas = tuple(config.betas)
    if len(betas) != 2 or not all(number(b) and 0 <= b < 1 for b in betas):
        raise bad("betas", "two numbers in [0, 1), e.g. (0.5, 0.999)", config.betas)
    disc = config.discriminator_features()
    if not disc or not all(integer(f) and f >= 1 for f in disc):
        raise bad("disc_features", "one or more widths of at least 1, e.g. (64, 128, 256, 512)",
                  config.disc_features)
    smallest = next((n for n in range(4, 8193, 4) if patch_side(n, disc) >= 1), None)
    if smallest is None:
        raise bad("disc_features", "a list short enough for images up to 8192 px", config.disc_features)
    size = config.image_size
    if not integer(size) or size % 4 or size < smallest:
        raise bad("image_size", f"a multiple of 4 (the generator halves it twice) and at least "
                  f"{smallest} (the discriminator's smallest input)", size)
    decay = config.decay_from
    if isinstance(decay, str):
        if decay != "half":
            raise bad("decay_from", 'an iteration, "half", a share of the run below 1, or None', decay)
    elif decay is not None:
        if integer(decay):
            if decay < 0:
                raise bad("decay_from", "an iteration of at least 0", decay)
        elif not number(decay) or not 0 < decay < 1:
            raise bad("decay_from", 'an iteration, "half", a share of the run in (0, 1), or None', decay)
