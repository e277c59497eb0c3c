"""The notebooks' set-up helpers: which sizes a run gets, and the training config they build."""

from __future__ import annotations

from pathlib import Path

import torch

from utils import notebook as nb
from utils.demo import DEMO


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


def test_builtin_runs_train_exactly_like_the_demo(tmp_path):
    config = nb.train_config(nb.BUILTIN, Path("a"), Path("b"), tmp_path)
    assert config.resume and config.out == tmp_path
    assert (config.image_size, config.num_features, config.num_residuals, config.batch_size) == (
        DEMO.image_size, DEMO.num_features, DEMO.num_residuals, DEMO.batch_size)
    assert (config.lr, config.lambda_identity, config.iterations) == (DEMO.lr, DEMO.lambda_identity,
                                                                      DEMO.iterations)
    assert config.discriminator_features() == DEMO.disc_features


def test_overrides_and_presets_reach_the_config(tmp_path):
    config = nb.train_config(nb.FAST, Path("a"), Path("b"), tmp_path, preset="paper", lr=1e-3)
    assert config.lr == 1e-3 and config.pool_size == 50  # explicit value wins, preset fills the rest
    assert 1 <= config.sample_every <= nb.FAST.iterations
