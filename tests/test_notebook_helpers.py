"""The notebooks' set-up helpers: which sizes a run gets, and the training config they build."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from utils import notebook as nb
from utils.settings import DEMO


def test_fast_mode_wins(monkeypatch):
    monkeypatch.setenv("CH06_FAST", "1")
    assert nb.run_sizes(real_data=True, device=torch.device("cuda")) is nb.FAST
    assert nb.start().files.name == "fast"  # fast runs never mix with a reader's real files


def test_real_data_on_a_gpu_gets_the_chapters_sizes(monkeypatch):
    monkeypatch.delenv("CH06_FAST", raising=False)
    sizes = nb.run_sizes(real_data=True, device=torch.device("cuda"))
    assert (sizes.image_size, sizes.num_features, sizes.num_residuals) == (256, 64, 9)
    assert nb.run_sizes(real_data=True, device=torch.device("cpu")).image_size == 128
    assert nb.run_sizes(real_data=False, device=torch.device("cpu")) is nb.BUILTIN


def test_demo_notebooks_and_cli_build_a_run_from_one_place(tmp_path):
    from utils import train as tr
    from utils.settings import train_config, train_options

    # derived from the demo's settings, not a copy of their values; the notebooks teach the
    # chapter's generator, whichever variant the demo uses
    assert nb.BUILTIN == replace(DEMO, generator="chapter")
    config = nb.train_config(nb.BUILTIN, Path("a"), Path("b"), tmp_path)
    assert config.resume and config.out == tmp_path and config.generator == "chapter"
    assert config == train_config(nb.BUILTIN, [Path("a")], [Path("b")], tmp_path, resume=True)  # every field
    args = tr.build_parser().parse_args(["--domain-a", "a", "--domain-b", "b", "--out", str(tmp_path),
                                         "--preset", "demo"])
    cli = tr.config_from_args(args)
    for field in train_options(DEMO):  # every training setting, not a hand-picked few
        assert getattr(cli, field) == getattr(DEMO, field, getattr(config, field)), field
    assert config.discriminator_features() == DEMO.disc_features


def test_the_chapter_settings_are_the_chapters(tmp_path):
    from utils.train import TrainConfig

    chapter = nb.train_config(nb.CHAPTER, Path("a"), Path("b"), tmp_path)
    plain = TrainConfig(domain_a="a", domain_b="b", out=tmp_path)  # the dataclass defaults are the chapter's
    for field in ("image_size", "batch_size", "lr", "betas", "lambda_cycle", "lambda_identity", "pool_size",
                  "decay_from", "num_features", "num_residuals"):
        assert getattr(chapter, field) == getattr(plain, field), field
    assert chapter.iterations == 48_472 and chapter.checkpoint_every == 2000


def test_overrides_and_presets_reach_the_config(tmp_path):
    config = nb.train_config(nb.FAST, Path("a"), Path("b"), tmp_path, preset="paper", lr=1e-3)
    assert config.lr == 1e-3 and config.pool_size == 50  # explicit value wins, preset fills the rest
    assert 1 <= config.sample_every <= nb.FAST.iterations


def test_the_run_description_names_the_processor():
    """Figures are quoted with the CPU that made them: speeds differ between CPUs of one architecture."""
    from utils.runtime import cpu_name, describe

    line = describe(torch.device("cpu"))
    assert cpu_name() in line and f"{os.cpu_count()} cores" in line and cpu_name()
