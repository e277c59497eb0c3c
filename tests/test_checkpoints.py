"""Atomic saves and safe loads of weights files."""

from __future__ import annotations

import os
import pickle
import shlex
import warnings
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
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ck.CheckpointError):
        warnings.simplefilter("always")
        ck.safe_load(path)
    assert "must never run" not in capsys.readouterr().out
    assert not caught, [str(w.message) for w in caught]  # torch's "Detected pickle protocol 4" stays quiet


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


def test_a_web_page_saved_as_weights_says_so_without_torchs_unsafe_advice(tmp_path):
    path = tmp_path / "gen_black.pth"
    path.write_text("<!DOCTYPE html>\n<html><body>Page not found</body></html>")
    with pytest.raises(ck.CheckpointError) as err:
        ck.safe_load(path)
    assert "web page (HTML)" in str(err.value) and "weights_only=False" not in str(err.value)


def test_a_refused_pickle_names_what_it_refers_to_without_torchs_unsafe_advice(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({"x": Exploit()}, tmp_path / "evil.pth")
    with pytest.raises(ck.CheckpointError) as err:
        ck.safe_load(tmp_path / "evil.pth")
    assert "mkdir" in str(err.value) and "could run code" in str(err.value)
    assert "weights_only=False" not in str(err.value) and not marker.exists()


def _training_checkpoint(path):
    gen_A, gen_B = Generator(3, 8, 1), Generator(3, 8, 1)
    ck.atomic_save({"format": 1, "iteration": 5, "gen_A": gen_A.state_dict(), "gen_B": gen_B.state_dict(),
                    "disc_A": {}, "disc_B": {}, "opt_gen": {"state": {}}}, path)
    return gen_A, gen_B


def test_load_generator_on_a_training_checkpoint_says_what_it_is_and_how_to_get_the_generator(tmp_path):
    run = tmp_path / "My Course"  # the command it prints must paste as one path
    run.mkdir()
    _training_checkpoint(run / "checkpoint.pt")
    with pytest.raises(ck.CheckpointError) as err:
        ck.load_generator(run / "checkpoint.pt")
    message = str(err.value)
    assert "checkpoint.pt is a training checkpoint" in message and "not a generator's state_dict" in message
    assert str(run / "gen_black.pth") in message
    printed = shlex.split(message.split("`")[1])
    assert printed == ["python", "-m", "utils.checkpoints", "extract", str(run / "checkpoint.pt")]


def test_extract_writes_both_generators_and_keeps_existing_ones_without_force(tmp_path, capsys):
    gen_A, gen_B = _training_checkpoint(tmp_path / "checkpoint.pt")
    assert ck.main(["extract", str(tmp_path / "checkpoint.pt")]) == 0
    for name, gen in (("gen_black.pth", gen_A), ("gen_blond.pth", gen_B)):
        loaded = ck.load_generator(tmp_path / name)
        assert all(torch.equal(a, b) for a, b in zip(gen.state_dict().values(),
                                                      loaded.state_dict().values(), strict=True))
    before = (tmp_path / "gen_black.pth").read_bytes()
    (tmp_path / "gen_black.pth").write_bytes(b"mine")
    capsys.readouterr()
    assert ck.main(["extract", str(tmp_path / "checkpoint.pt")]) == 2
    assert "already exist" in capsys.readouterr().err and (tmp_path / "gen_black.pth").read_bytes() == b"mine"
    assert ck.main(["extract", str(tmp_path / "checkpoint.pt"), "--force"]) == 0
    assert (tmp_path / "gen_black.pth").read_bytes() == before


def test_extract_refuses_a_generator_file(tmp_path):
    ck.atomic_save(Generator(3, 8, 1).state_dict(), tmp_path / "g.pth")
    with pytest.raises(ck.CheckpointError, match="not a training checkpoint"):
        ck.extract_generators(tmp_path / "g.pth")


# extra code – beyond the chapter: a trained variant is read back as that variant, never as the chapter's
@pytest.mark.parametrize("variant", ["skip", "mask_resize_conv"])
def test_load_generator_rebuilds_the_variant_a_file_was_saved_from(tmp_path, variant):
    torch.manual_seed(0)
    gen = Generator(3, num_features=8, num_residuals=1, variant=variant).eval()
    ck.atomic_save(gen.state_dict(), tmp_path / "g.pth")
    loaded = ck.load_generator(tmp_path / "g.pth")
    assert loaded.variant == variant
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


def test_extract_writes_neither_generator_when_one_is_not_a_generator(tmp_path):
    ck.atomic_save({"format": 1, "iteration": 5, "gen_A": Generator(3, 8, 1).state_dict(), "gen_B": {},
                    "disc_A": {}, "disc_B": {}, "opt_gen": {"state": {}}}, tmp_path / "checkpoint.pt")
    with pytest.raises(ck.CheckpointError):
        ck.extract_generators(tmp_path / "checkpoint.pt")
    assert not (tmp_path / "gen_black.pth").exists() and not (tmp_path / "gen_blond.pth").exists()


def _checkpoint_file(path, **extra):
    gen = Generator(3, 8, 1).state_dict()
    ck.atomic_save({"format": 1, "gen_A": gen, "gen_B": gen, **extra}, path)
    return path


def test_extract_out_a_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    checkpoint = _checkpoint_file(tmp_path / "checkpoint.pt")
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    assert ck.main(["extract", str(checkpoint), "--out", str(afile)]) == 2
    err = capsys.readouterr().err
    assert "notes.txt is a file, not a folder" in err and "Errno" not in err
    assert afile.read_text() == "mine" and not (tmp_path / "gen_black.pth").exists()


def test_extract_refuses_generators_that_are_not_finite(tmp_path):
    gen = Generator(3, 8, 1).state_dict()
    bad = {k: v.clone() for k, v in gen.items()}
    bad["initial.0.weight"].fill_(float("inf"))
    ck.atomic_save({"format": 1, "gen_A": gen, "gen_B": bad}, tmp_path / "checkpoint.pt")
    with pytest.raises(ck.CheckpointError, match=r"\[gen_B\] holds weights that are not finite"):
        ck.extract_generators(tmp_path / "checkpoint.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # never half a pair


def test_load_generator_refuses_nan_weights_with_what_to_do(tmp_path):
    state = Generator(3, 8, 1).state_dict()
    state["res_blocks.0.block.0.conv.0.weight" if "res_blocks.0.block.0.conv.0.weight" in state
          else next(iter(state))].view(-1)[0] = float("nan")
    ck.atomic_save(state, tmp_path / "g.pth")
    with pytest.raises(ck.CheckpointError, match=r"not finite numbers \(NaN or Inf in 1 of .*diverged"):
        ck.load_generator(tmp_path / "g.pth")


@pytest.mark.parametrize("state, words", [
    ({"format": 9, "gen_A": {}, "gen_B": {}}, "written by a newer version of this code (checkpoint format 9"),
    ({"format": 1, "gen_A": {}, "gen_B": {}}, "cannot be resumed: it lacks 'pools'"),
    ({"weights": 1}, "is not a training checkpoint"),
    ([1, 2], "is not a training checkpoint of utils.train (it holds list)"),
])
def test_training_checkpoints_that_cannot_be_resumed_say_why(state, words):
    with pytest.raises(ck.CheckpointError) as caught:
        ck.check_training_checkpoint(state, "run/checkpoint.pt", formats=[1], required=["pools"])
    assert words in str(caught.value)


def test_holds_generators_only_for_the_exact_weights(tmp_path):
    path = _checkpoint_file(tmp_path / "checkpoint.pt", config={"image_size": 48})
    gen = ck.safe_load(path)["gen_A"]
    assert ck.holds_generators(path, {"gen_A": gen, "gen_B": gen}) == {"image_size": 48}
    other = {k: v + 1 for k, v in gen.items()}
    assert ck.holds_generators(path, {"gen_A": gen, "gen_B": other}) is None
    assert ck.holds_generators(tmp_path / "none.pt", {"gen_A": gen}) is None


def test_extract_into_a_folder_a_run_is_writing_is_refused(tmp_path):
    from tests.conftest import lock_held_elsewhere
    from utils.locks import FolderBusyError

    checkpoint = _checkpoint_file(tmp_path / "checkpoint.pt")
    with lock_held_elsewhere(tmp_path / "out") as holder:
        with pytest.raises(FolderBusyError, match=rf"in use by process {holder.pid} "):
            ck.extract_generators(checkpoint, tmp_path / "out")
    assert not (tmp_path / "out" / "gen_black.pth").exists()
