"""Atomic saves and safe loads of weights files."""

from __future__ import annotations

import pickle
from unittest import mock

import pytest
import torch

from utils import checkpoints as ck
from utils.ch06util import Generator


def test_load_generator_round_trips_a_state_dict(tmp_path):
    gen = Generator(3, num_features=8, num_residuals=1)
    ck.atomic_save(gen.state_dict(), tmp_path / "gen_black.pth")
    loaded = ck.load_generator(tmp_path / "gen_black.pth", num_features=8, num_residuals=1)
    assert not loaded.training
    for (k, v), (k2, v2) in zip(gen.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)


def test_load_generator_reads_width_and_depth_from_the_file(tmp_path):
    ck.atomic_save(Generator(3, num_features=8, num_residuals=3).state_dict(), tmp_path / "g.pth")
    gen = ck.load_generator(tmp_path / "g.pth")
    assert gen.initial[0].out_channels == 8 and len(gen.res_blocks) == 3


def test_wrong_size_says_which_keys_and_shapes(tmp_path):
    ck.atomic_save(Generator(3, num_features=8, num_residuals=1).state_dict(), tmp_path / "g.pth")
    with pytest.raises(ck.CheckpointError, match=r"does not fit Generator.*missing keys.*wrong shapes"):
        ck.load_generator(tmp_path / "g.pth", num_features=16, num_residuals=2)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "g.pth"
    ck.atomic_save(Generator(3, 8, 1).state_dict(), path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ck.CheckpointError, match=r"Cannot read .*g\.pth.*damaged"):
        ck.safe_load(path)


def test_missing_file_says_how_to_get_one(tmp_path):
    with pytest.raises(ck.CheckpointError, match=r"No weights file .*Train first"):
        ck.safe_load(tmp_path / "nothing.pth")


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"x": _Exploit()}, handle)
    with pytest.raises(ck.CheckpointError):
        ck.safe_load(path)
    assert "must never run" not in capsys.readouterr().out


def test_a_crash_mid_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    ck.atomic_save({"step": torch.tensor(1)}, path)
    with mock.patch("torch.save", side_effect=KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        ck.atomic_save({"step": torch.tensor(2)}, path)
    assert ck.safe_load(path)["step"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left over


def test_not_a_state_dict(tmp_path):
    ck.atomic_save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ck.CheckpointError, match="holds a list, not a state_dict"):
        ck.load_generator(tmp_path / "list.pth")


def test_fetch_published_generators_from_a_folder_url(tmp_path):
    source = tmp_path / "published"
    for name in ck.PUBLISHED_FILES:
        ck.atomic_save(Generator(3).state_dict(), source / name)
    written = ck.fetch_published_generators(source.as_uri(), tmp_path / "files")
    assert [p.name for p in written] == list(ck.PUBLISHED_FILES)
    ck.load_generator(written[0])


def test_fetch_published_generators_dead_link_leaves_nothing(tmp_path):
    with pytest.raises(ck.CheckpointError, match="Offline, or the link is dead"):
        ck.fetch_published_generators((tmp_path / "missing").as_uri(), tmp_path / "files")
    assert list((tmp_path / "files").iterdir()) == []


def test_fetch_published_generators_rejects_a_wrong_file(tmp_path):
    source = tmp_path / "published"
    source.mkdir()
    for name in ck.PUBLISHED_FILES:
        (source / name).write_text("<html>Not found</html>")
    with pytest.raises(ck.CheckpointError, match="Cannot read"):
        ck.fetch_published_generators(source.as_uri(), tmp_path / "files")
    assert list((tmp_path / "files").iterdir()) == []


def test_fetch_published_generators_needs_an_address(tmp_path, monkeypatch):
    monkeypatch.delenv(ck.WEIGHTS_URL_ENV, raising=False)
    with pytest.raises(ck.CheckpointError, match="No address for the published weights"):
        ck.fetch_published_generators(None, tmp_path)


def test_atomic_save_gives_the_file_the_usual_permissions(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        path = ck.atomic_save({"x": torch.zeros(1)}, tmp_path / "g.pth")
    finally:
        os.umask(mask)
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


# extra code – beyond the chapter: a trained variant is read back as that variant, never as the chapter's
def test_load_generator_rebuilds_the_variant_a_file_was_saved_from(tmp_path):
    torch.manual_seed(0)
    gen = Generator(3, num_features=8, num_residuals=1, variant="skip").eval()
    ck.atomic_save(gen.state_dict(), tmp_path / "g.pth")
    loaded = ck.load_generator(tmp_path / "g.pth")
    assert loaded.variant == "skip"
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), gen(x))


def test_a_variant_file_does_not_fit_the_chapters_generator(tmp_path):
    ck.atomic_save(Generator(3, 8, 1, variant="no_first_norm").state_dict(), tmp_path / "g.pth")
    with pytest.raises(ck.CheckpointError, match=r"unexpected keys \['variant_no_first_norm'\]"):
        ck.load_state_dict_checked(Generator(3, 8, 1), ck.safe_load(tmp_path / "g.pth"), tmp_path / "g.pth")


def test_an_unknown_variant_in_a_file_is_a_clear_error(tmp_path):
    state = {**Generator(3, 8, 1).state_dict(), "variant_sepia": torch.tensor(1)}
    ck.atomic_save(state, tmp_path / "g.pth")
    with pytest.raises(ck.CheckpointError, match="Unknown generator variant"):
        ck.load_generator(tmp_path / "g.pth")
