"""What a run trains with: the settings type, the named recipes and their mapping to `TrainConfig`.

(Extra code – not in the book.) One module every run reads: `make demo` (`DEMO`), the tests
and CI (`FAST`), the notebooks (`CHAPTER`, `CHAPTER_FAST`, `BUILTIN`), and the command line's
`--preset chapter|paper|demo` (`PRESETS`, `preset_options`). `RunSettings` (also known by its
older name `RunSettings`) is turned into a `TrainConfig` in one place (`train_options`,
`train_config`), and `TrainConfig` checks every setting when it is made
(`utils.setting_checks`). Nothing here imports training code, the demo or the notebooks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from utils.cli import SettingError
from utils.setting_checks import check_settings

PathLike = str | os.PathLike

PRESETS: dict[str, dict[str, Any]] = {
    "chapter": {},  # the dataclass defaults are the chapter's
    "paper": {"lr": 2e-4, "lambda_identity": 5.0, "pool_size": 50, "decay_from": "half"},
}
# "demo": the settings of `make demo` (`DEMO` below), so the CLI, the demo and the notebooks
# build that run from one place (`train_options`).
PRESET_NAMES = (*PRESETS, "demo")


def preset_options(preset: str) -> dict[str, Any]:
    """The TrainConfig fields a preset sets ("chapter", "paper" or "demo")."""
    if preset == "demo":
        return train_options(DEMO)
    if preset not in PRESETS:
        raise SettingError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}.")
    return PRESETS[preset]


# ------------------------------------------------------------------------- configuration
@dataclass
class TrainConfig:
    """Everything a run needs; the defaults are the chapter's (listings 6.6, 6.7).

    domain_a, domain_b: folders of domain A (black hair) and B (blond); one or a list.
    out: folder for checkpoint.pt, gen_black.pth, gen_blond.pth, history.csv, samples/.
    image_size: side of the square training images (chapter: 256).
    batch_size: images per iteration and per process (chapter: 1).
    iterations: the run's TOTAL iterations, so the same call with resume=True finishes it.
    epochs: the run's total epochs; with iterations, whichever comes first.
    minutes: wall-clock budget of this session only (e.g. under a Colab time limit).
    resume: continue from the newest checkpoint in `out` (starts fresh if there is none).
    resume_anyway: resume even when the domain folders differ from the ones the checkpoint
        was trained on (other folders, A and B swapped); without it such a resume is refused.
    lr, betas: Adam's settings for both optimisers (chapter: 1e-5, (0.5, 0.999)).
    lambda_cycle: weight of the cycle-consistency L1 loss (chapter and paper: 10).
    lambda_identity: weight of the identity loss L1(G(x), x); 0 = off (paper: 5).
    pool_size: history of generated images shown to the discriminators; 0 = off (paper: 50).
    decay_from: iteration from which the lr falls linearly to 0 at the end, "half" = the
        second half of the run, a float below 1 = that share of the run (0.6: the last 40%);
        None = constant lr (chapter). Needs iterations or epochs.
    random_pairing: draw B's image at random per item (paper's unaligned data) instead of
        the chapter's `B[i % len(B)]`; reproducible from the seed.
    num_features, num_residuals: generator size (chapter: 64, 9); see `disc_features`.
    generator: "chapter" (the book's) or a variant beyond the chapter that sees colour
        (`ch06util.GENERATOR_VARIANTS`); saved weights record it, so they load as that variant.
    disc_features: discriminator widths; None = (f, 2f, 4f, 8f) with f = num_features,
        which is the chapter's (64, 128, 256, 512) at the default size.
    checkpoint_every: iterations between checkpoints (also written at the end and on Ctrl-C).
    sample_every: iterations between sample grids in out/samples/; 0 = never.
    log_every: iterations between reads of the losses (each read syncs a GPU).
    seed: one number that makes a run repeatable on the same machine.
    device: "cuda", "cpu", "mps", ...; None = `utils.runtime.pick_device()`.
    workers: DataLoader worker processes; None = `utils.speed.recommended_workers` (0 on a CPU).
    mixed_precision: autocast where it pays (`ch06util.pick_precision`: bf16 or fp16 on CUDA,
        bf16 on CPUs with AMX or AVX512-BF16, float32 on other CPUs); False = float32
        everywhere, e.g. to compare a GPU run with a CPU one or to rule precision out when
        losses turn NaN. Each session prints which and why; a resume may change it (it says so).
    fast_gpu: on a CUDA GPU, compiled networks (CUDA graphs), channels-last and, at batch 1,
        a batch size picked from the GPU's memory with a scaled lr (`utils.fast_gpu`); the
        chapter's model and losses either way. A no-op with a note elsewhere.
    force: replace files in `out` that this run did not write (a `gen_black.pth` /
        `gen_blond.pth` pair without the checkpoint that made them, such as the book's pair
        from `make weights`, a `history.csv`, sample grids); without it they are refused.
    explicit: the names of the settings given on purpose (the command line's flags); on
        resume the others are taken from the run's checkpoint (`utils.run_record`). None:
        every setting counts as given (the Python API: what you pass is what you mean).
    """

    domain_a: PathLike | Sequence[PathLike]
    domain_b: PathLike | Sequence[PathLike]
    out: PathLike
    image_size: int = 256
    batch_size: int = 1
    iterations: int | None = None
    epochs: int | None = None
    minutes: float | None = None
    resume: bool = False
    resume_anyway: bool = False
    lr: float = 1e-5
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.0
    pool_size: int = 0
    decay_from: int | float | str | None = None
    random_pairing: bool = False
    num_features: int = 64
    num_residuals: int = 9
    generator: str = "chapter"  # extra code – beyond the chapter: ch06util.GENERATOR_VARIANTS
    lambda_mask: float = 0.0  # extra code – a mask variant's mask mean (ch06util.mask_penalty)
    lambda_mask_tv: float = 0.0  # extra code – and its total variation
    mask_start: float | None = None  # extra code – a mask variant's mask at the start (ch06util.MASK_START)
    disc_features: tuple[int, ...] | None = None
    checkpoint_every: int = 2000
    sample_every: int = 500
    log_every: int = 20
    seed: int = 0
    device: str | None = None
    workers: int | None = None
    mixed_precision: bool = True
    fast_gpu: bool = False  # extra code – utils/fast_gpu.py
    force: bool = False
    explicit: frozenset[str] | None = None

    def __post_init__(self) -> None:
        check_settings(self)

    @classmethod
    def from_preset(cls, preset: str = "chapter", **overrides: Any) -> TrainConfig:
        """A config from a preset ("chapter", "paper" or "demo"); explicit keyword arguments win."""
        return cls(**{**preset_options(preset), **overrides})

    def loss_weights(self) -> dict[str, float]:
        """The run's loss weights as `ch06util.train_step` takes them (every caller passes all)."""
        return {"lambda_cycle": self.lambda_cycle, "lambda_identity": self.lambda_identity,
                "lambda_mask": self.lambda_mask, "lambda_mask_tv": self.lambda_mask_tv}

    def discriminator_features(self) -> tuple[int, ...]:
        f = self.num_features
        return tuple(self.disc_features) if self.disc_features else (f, 2 * f, 4 * f, 8 * f)


@dataclass(frozen=True)
class RunSettings:
    """Everything a run trains with: `DEMO` for `make demo`, `FAST` for the tests and CI, and
    the notebooks' sizes (`CHAPTER`, `BUILTIN`, `CHAPTER_FAST`).

    One type, turned into a `TrainConfig` in one place (`train_config`), which
    also checks every training setting (`TrainConfig` says the allowed range); the two data
    counts are checked here.
    """

    synthetic_count: int | None  # faces generated when no real CelebA is found (None: prepare's default)
    test_count: int  # faces held out per domain, never trained on
    image_size: int
    num_features: int  # generator width (chapter: 64)
    num_residuals: int  # generator residual blocks (chapter: 9)
    disc_features: tuple[int, ...]  # discriminator widths (chapter: 64, 128, 256, 512)
    batch_size: int
    iterations: int
    lr: float
    betas: tuple[float, float]
    lambda_cycle: float
    lambda_identity: float
    pool_size: int
    decay_start: float | None  # share of the iterations after which the lr falls linearly to 0
    generator: str = "chapter"  # extra code – beyond the chapter: ch06util.GENERATOR_VARIANTS
    lambda_mask: float = 0.0  # extra code – a mask variant's mask penalty (ch06util.mask_penalty)
    lambda_mask_tv: float = 0.0
    mask_start: float | None = None

    def __post_init__(self) -> None:
        if self.synthetic_count is not None and self.synthetic_count < 0:
            raise SettingError(f"synthetic_count must be at least 0 (or None), got {self.synthetic_count}.")
        if self.test_count < 0:
            raise SettingError(f"test_count must be at least 0, got {self.test_count}.")
        train_config(self, "A", "B", "run")  # raises SettingError for a training setting out of range


DemoSettings = RunSettings  # its first name, from when only the demo used it

def train_options(settings: RunSettings) -> dict[str, Any]:
    """The `TrainConfig` fields that `settings` fix (sizes, optimiser, losses, schedule).

    The one mapping from settings to a training run: the demo, the notebooks and the CLI's
    `--preset demo` all go through it, so they cannot drift apart.
    """
    return dict(
        image_size=settings.image_size, batch_size=settings.batch_size, iterations=settings.iterations,
        lr=settings.lr, betas=settings.betas, lambda_cycle=settings.lambda_cycle,
        lambda_identity=settings.lambda_identity, pool_size=settings.pool_size,
        decay_from=settings.decay_start,  # a share of the run: the last 40% for 0.6
        num_features=settings.num_features, num_residuals=settings.num_residuals,
        disc_features=settings.disc_features, generator=settings.generator,
        lambda_mask=settings.lambda_mask, lambda_mask_tv=settings.lambda_mask_tv,
        mask_start=settings.mask_start,
    )


def train_config(settings: RunSettings, domain_a: PathLike | Sequence[PathLike],
                 domain_b: PathLike | Sequence[PathLike], out: PathLike, **overrides: Any) -> TrainConfig:
    """The training configuration of a run at `settings`: the chapter's networks and losses.

    `overrides` are further TrainConfig fields (seed, device, minutes, resume, ...) and win;
    `preset="paper"` (or "chapter") lays a preset between the settings and the overrides.
    """
    preset = overrides.pop("preset", None)
    if overrides.get("device") is not None:
        overrides["device"] = str(overrides["device"])
    its = settings.iterations
    return TrainConfig(
        domain_a=domain_a, domain_b=domain_b, out=out,
        **{**train_options(settings),
           "checkpoint_every": min(2000, max(1, its // 4)), "sample_every": min(500, max(1, its // 8)),
           **(preset_options(preset) if preset else {}), **overrides},
    )


# Measured with benchmarks/demo_frontier.py and the throughput runs in benchmarks/README.md
# (2-core Xeon, torch 2.14 CPU). Why each value differs from the chapter's:
# * 64 px, generator 16 wide with 4 residual blocks, discriminator (16, 32, 64, 128): on a CPU
#   an iteration costs roughly pixels x width^2; these sizes train ~23 pairs/s on 2 idle cores
#   (a 32-wide generator with the chapter's 2x discriminator: ~8-10 pairs/s).
# * batch 8: 2-5x the pairs per second of batch 1 on a CPU (one big convolution beats eight).
# * lr 2e-4 (the paper's; the chapter's 1e-5 barely moves in 15 minutes); 5e-4 let the
#   discriminators win (D loss ~0.01) and the translations fell apart.
# * discriminator first width = generator width (the chapter's ratio, 64/64): with a 2x wider
#   one (32) the discriminator loss fell to ~0.04 within 600 iterations and it won.
# * identity loss 10 (the cycle weight; the paper uses 0.5x): the generators must keep
#   everything but the hair, which is what PSNR outside the hair measures. At 2,000 iterations
#   10 beat 20 on all four held-out numbers (0.87 / 21.7 dB and 0.63 / 19.4 dB against
#   0.83 / 21.2 and 0.50 / 18.8; one run each); 40 stopped the hair from changing.
# * lr decay over the last 40% (the paper's recipe, shortened): the GAN noise settles; both
#   directions gained 1-2 dB while it ran in the frontier run (not isolated from more training).
# * 2,000 faces, 100 per domain held out: enough for 90%+ to mean something on unseen faces.
# Tried and not better per CPU-minute (a float32 sweep on a GPU standing in for the CPU):
# 32 or 48 px, 2 residual blocks, a 24-wide generator at
# 32 px, batch 16, and a copy-only warm-up of the generators.
# * generator "mask" (extra code – beyond the chapter; the notebooks keep the chapter's): the
#   chapter's generator redraws every pixel, and cannot see an image's overall colour (its first
#   InstanceNorm removes it). "no_first_norm" (without that norm) won on all four held-out numbers
#   for both seeds; "mask" is that network plus a predicted mask, keeping the input itself
#   wherever the mask is 0, and won again on all four for both seeds (benchmarks/README.md,
#   "A generator that edits only where it must"); resize + conv upsampling did not help.
DEMO = RunSettings(
    synthetic_count=2000, test_count=100, image_size=64, num_features=16, num_residuals=4,
    disc_features=(16, 32, 64, 128), batch_size=8, iterations=2000, lr=2e-4, betas=(0.5, 0.999),
    lambda_cycle=10.0, lambda_identity=10.0, pool_size=0, decay_start=0.6, generator="mask",
)
# extra code – what the demo prints about its generator: which variant, and why
DEMO_GENERATOR_WHY = (
    "the chapter's generator redraws every pixel and cannot see an image's overall colour; this one "
    "(without the first instance norm) also predicts a mask of where to edit and keeps the input, "
    "pixel for pixel, everywhere else. It beat the chapter's generator and the 'no_first_norm' variant "
    "on all four held-out numbers for two seeds (benchmarks/README.md, \"A generator that edits only "
    "where it must\"); the notebooks keep the chapter's generator")
# Seconds end to end on a CPU: enough to run every step and write every file.
FAST = RunSettings(
    synthetic_count=None, test_count=10, image_size=32, num_features=8, num_residuals=1,
    disc_features=(8, 16, 32, 64), batch_size=2, iterations=4, lr=2e-4, betas=(0.5, 0.999),
    lambda_cycle=10.0, lambda_identity=5.0, pool_size=0, decay_start=None, generator=DEMO.generator,
)


def settings_for(fast: bool, iterations: int | None = None) -> RunSettings:
    """`DEMO` or `FAST`, with the number of iterations overridden when given (and checked)."""
    settings = FAST if fast else DEMO
    if iterations is not None:
        settings = replace(settings, iterations=iterations)
    return settings


# The notebooks' runs (`utils.notebook.run_sizes` picks one).
# The chapter's own settings: what a reader with CelebA and a GPU runs (listings 6.6, 6.7).
CHAPTER = RunSettings(
    synthetic_count=0, test_count=64, image_size=256, num_features=64, num_residuals=9,
    disc_features=(64, 128, 256, 512), batch_size=1, iterations=48_472, lr=1e-5, betas=(0.5, 0.999),
    lambda_cycle=10.0, lambda_identity=0.0, pool_size=0, decay_start=None)

# Seconds on a laptop CPU: what CI runs every notebook with (the chapter's settings, tiny sizes).
# 12 iterations: enough for the run's speed estimate (after 3 warm-up and 2 timed iterations) to
# be checked against the 7 that follow (tests/test_notebooks_run.py).
CHAPTER_FAST = replace(CHAPTER, synthetic_count=40, test_count=4, image_size=32, num_features=8,
                       num_residuals=1, disc_features=(8, 16, 32, 64), iterations=12)

# The built-in faces: exactly what `make demo` trains (see `DEMO` above for why each
# setting differs from the chapter's), so the notebooks and the demo share data and results.
BUILTIN = replace(DEMO, generator="chapter")  # the notebooks teach the chapter's generator
