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
    from utils.demo import train_config, train_options
    from utils.prepare import DataChoice

    config = nb.train_config(nb.BUILTIN, Path("a"), Path("b"), tmp_path)
    assert config.resume and config.out == tmp_path
    data = DataChoice(real=False, root=tmp_path, domain_A=Path("a"), domain_B=Path("b"), test_A=None,
                      test_B=None, truth=None)
    demo_config = train_config(DEMO, data, tmp_path, minutes=None)
    for field in set(train_options(DEMO)) - {"generator"}:  # every training setting, not a hand-picked few
        assert getattr(config, field) == getattr(demo_config, field), field
    assert config.generator == "chapter"  # the notebooks teach the chapter's generator (the demo: a variant)
    assert config.discriminator_features() == DEMO.disc_features


def test_overrides_and_presets_reach_the_config(tmp_path):
    config = nb.train_config(nb.FAST, Path("a"), Path("b"), tmp_path, preset="paper", lr=1e-3)
    assert config.lr == 1e-3 and config.pool_size == 50  # explicit value wins, preset fills the rest
    assert 1 <= config.sample_every <= nb.FAST.iterations
