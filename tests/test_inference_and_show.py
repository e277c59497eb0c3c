"""Running generators on files, and the figures the notebooks show."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from tests.conftest import write_images  # noqa: E402
from utils import inference, show  # noqa: E402
from utils.ch06util import Generator  # noqa: E402


class Negate(nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return -x + 0 * self.dummy


def test_load_image_resizes_and_normalises(tmp_path):
    (path,) = write_images(tmp_path, 1, size=(30, 40))
    x = inference.load_image(path, 16)
    assert x.shape == (1, 3, 16, 16) and -1 <= x.min() and x.max() <= 1


def test_load_batch_takes_sorted_files_from_offset(tmp_path):
    write_images(tmp_path, 5)
    batch = inference.load_batch(tmp_path, 2, 8, offset=3)
    assert batch.shape == (2, 3, 8, 8)
    assert torch.equal(batch[0], inference.load_image(tmp_path / "000004.png", 8)[0])


def test_translate_builds_no_graph_and_keeps_the_training_mode():
    gen = Generator(3, 8, 1).train()
    out = inference.translate(gen, torch.rand(5, 3, 16, 16) * 2 - 1, batch_size=2)
    assert out.shape == (5, 3, 16, 16) and not out.requires_grad
    assert gen.training


def test_round_trip_of_an_involution_returns_the_input():
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    there, back = inference.round_trip(Negate(), Negate(), x)
    assert torch.equal(there, -x) and torch.equal(back, x)


# extra code – beyond the chapter: a generator with a mask shows where it edits
def test_round_trip_stages_add_the_mask_of_a_mask_variant_only(one_thread):
    torch.manual_seed(0)
    x = torch.rand(3, 3, 18, 18) * 2 - 1  # not a multiple of 4: the mask comes back at the input's size
    labels = ("black", "→ blond", "→ black")
    rows, titles = inference.round_trip_stages(Negate(), Negate(), x, labels)
    assert titles == list(labels) and torch.equal(rows[1], -x) and torch.equal(rows[2], x)
    assert inference.edit_masks(Generator(3, 8, 1), x) is None  # the chapter's: no mask
    gen_there, gen_back = Generator(3, 8, 1, variant="mask").eval(), Generator(3, 8, 1, variant="mask").eval()
    rows, titles = inference.round_trip_stages(gen_there, gen_back, x, labels)
    assert titles == ["black", "→ blond", "edited (white)", "→ black"] and len(rows) == 4
    with torch.no_grad():
        _, mask = gen_there(nn.functional.pad(x, (0, 2, 0, 2), mode="reflect"), return_mask=True)
    expected = (mask[..., :18, :18] * 2 - 1).expand(-1, 3, -1, -1)
    assert rows[2].shape == x.shape and torch.allclose(rows[2], expected)
    assert torch.equal(rows[1], inference.translate(gen_there, x))


def test_save_round_trips_writes_listing_6_8_names(tmp_path):
    x = torch.zeros(2, 3, 8, 8)
    written = inference.save_round_trips([("black0", x), ("fakeblond0", x)], tmp_path)
    assert [p.name for p in written] == ["black0.png", "fakeblond0.png"]
    assert all(p.stat().st_size > 0 for p in written)


def test_show_rows_draws_one_row_per_batch(tmp_path):
    rows = [torch.zeros(4, 3, 8, 8), torch.ones(4, 3, 8, 8)]
    fig = show.show_rows(rows, ["original", "translated"], save_to=tmp_path / "grid.png", title="Round trips")
    assert fig._suptitle.get_text() == "Round trips"
    assert len(fig.axes) == 8
    assert fig.axes[4].get_ylabel() == "translated"
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert show.to_picture(rows[1][0]).min() == 1.0


def test_single_images_stand_side_by_side_not_stacked():
    """A photo and its translations, or one sample of A and one of B: one row, titled on top."""
    fig = show.show_rows([torch.zeros(1, 3, 8, 8)] * 4, ["yours", "→ blond", "→ back", "→ black"])
    assert len(fig.axes) == 4 and len({round(ax.get_position().y0, 3) for ax in fig.axes}) == 1
    assert [ax.get_title() for ax in fig.axes] == ["yours", "→ blond", "→ back", "→ black"]
    width, height = fig.get_size_inches()
    assert width > 3 * height  # sized to its four pictures (and the titles): no tall margins


def test_round_trips_read_left_to_right():
    """Each face's original, translation and way back on one row, in that order; eight faces
    of three stages fill a 4 x 6 grid (two faces a row, a narrow gap between them)."""
    faces = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 3, 4, 4) / 10
    stages = [faces, faces + 0.01, faces + 0.02]  # stage k of face f shows the value f / 10 + k / 100
    fig = show.show_round_trips(stages, ["black", "→ blond", "→ black"])
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert len(shown) == 24 and len(fig.axes) == 28  # four spacer columns' worth of empty axes
    first_row = sorted((ax for ax in shown if ax.get_position().y1 > 0.9),
                       key=lambda ax: ax.get_position().x0)
    values = [round(float(ax.get_images()[0].get_array()[0, 0, 0]) * 2 - 1, 2) for ax in first_row]
    assert values == [0.0, 0.01, 0.02, 0.1, 0.11, 0.12]  # face 0's round trip, then face 1's
    assert [ax.get_title() for ax in first_row] == ["black", "→ blond", "→ black"] * 2


def test_the_loss_summary_is_written_from_the_runs_own_numbers():
    """Notebook 03 once said D_loss "hovers around 0.25" beside a plot at 0.12-0.15: the
    sentence now comes from the history it describes."""
    rows = 100
    history = pd.DataFrame({"iteration": range(1, rows + 1), "D_loss": [0.5] * 80 + [0.13] * 20,
                            "cycle_loss": [0.4] * 20 + [0.1] * 80})
    text = show.loss_summary(history)
    assert "last 20 iterations D_loss averages 0.13" in text and "part of the time" in text
    assert "fell from 0.400 (first 20 iterations) to 0.100" in text
    even = show.loss_summary(history.assign(D_loss=0.5))
    assert "averages 0.50" in even and "cannot tell real from fake" in even


def test_plot_history_skips_losses_that_stayed_zero():
    history = pd.DataFrame({"iteration": range(10), "D_loss": 1.0, "G_loss": 2.0,
                            "cycle_loss": 0.5, "identity_loss": 0.0})
    ax = show.plot_history(history, window=3)
    assert [line.get_label() for line in ax.get_lines()] == ["D_loss", "G_loss", "cycle_loss"]


def test_show_domains_one_row_per_folder(tmp_path):
    write_images(tmp_path / "black", 3)
    write_images(tmp_path / "blond", 3)
    fig = show.show_domains({"black": tmp_path / "black", "blond": tmp_path / "blond"}, 3, 16)
    assert [fig.axes[i].get_ylabel() for i in (0, 3)] == ["black", "blond"]


def test_browse_runs_outside_a_front_end():
    img = torch.zeros(3, 8, 8)
    show.browse([("first", [img, img, img], ["a", "b", "c"]),
                 ("second", [img, img, img], ["a", "b", "c"])])


@pytest.mark.parametrize("call", [
    lambda: show.show_rows([], []),
    lambda: show.show_rows([torch.zeros(0, 3, 8, 8)], ["black"]),
    lambda: show.show_pictures([], []),
    lambda: show.browse([]),
])
def test_the_notebook_helpers_given_nothing_say_so_instead_of_failing(call, capsys):
    """Empty lists (an empty folder, a filter that kept nothing) gave ValueError / TraitError."""
    figure = call()
    assert "Nothing to show: " in capsys.readouterr().out
    if figure is not None:
        assert any("Nothing to show" in t.get_text() for t in figure.axes[0].texts)


def test_correlation_and_feature_maps():
    x = torch.randn(1, 4, 5, 5)
    assert show.correlation(x, 3 * x + 1) == pytest.approx(1.0)
    assert show.correlation(x, -x) == pytest.approx(-1.0)
    maps = show.feature_maps(x, count=2)
    assert maps.shape == (2, 3, 5, 5) and torch.equal(maps[1, 0], x[0, 1].tanh())


# ------------------------------------------------------------------ tensor checks, output size
@pytest.mark.parametrize("bad, error, hint", [
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), TypeError, "/ 127.5 - 1"),
    (torch.full((1, 3, 8, 8), 200.0), ValueError, "0..255"),
    (torch.zeros(1, 1, 8, 8), ValueError, "expand"),
    (torch.zeros(1, 4, 8, 8), ValueError, "RGBA"),
    (torch.zeros(1, 8, 8, 3), ValueError, "permute"),
    (torch.zeros(3, 8, 8), ValueError, "unsqueeze"),
    (torch.full((1, 3, 8, 8), float("nan")), ValueError, "values"),
    ("a string", TypeError, "load_images"),
])
def test_translate_refuses_what_the_generators_cannot_take(bad, error, hint):
    with pytest.raises(error, match="expected a float tensor of shape") as caught:
        inference.translate(Negate(), bad)
    assert hint in str(caught.value)
    with pytest.raises(error):
        inference.round_trip(Negate(), Negate(), bad)


def test_a_pil_image_gets_a_type_error_naming_the_converter():
    from PIL import Image

    with pytest.raises(TypeError, match="PIL.*to_model_input"):
        inference.translate(Negate(), Image.new("RGB", (8, 8)))


@pytest.mark.parametrize("height, width", [(30, 30), (37, 50), (33, 21)])
def test_translate_and_round_trip_keep_the_input_size(height, width, one_thread):
    torch.manual_seed(0)
    gen = Generator(3, 4, 1).eval()
    images = torch.rand(2, 3, height, width) * 2 - 1
    there, back = inference.round_trip(gen, gen, images)
    assert there.shape == back.shape == images.shape
    if height % 4 == 0 and width % 4 == 0:  # a multiple of 4: exactly the generator's output
        with torch.no_grad():
            assert torch.allclose(there, gen(images), atol=1e-6)


def test_to_model_input_matches_load_image(tmp_path):
    from PIL import Image

    (path,) = write_images(tmp_path, 1, size=(30, 40))
    assert torch.equal(inference.to_model_input(Image.open(path), 16), inference.load_image(path, 16))


def test_to_model_input_composites_alpha_and_refuses_other_arrays():
    import numpy as np
    from PIL import Image

    clear = Image.fromarray(np.zeros((6, 6, 4), np.uint8), "RGBA")
    assert torch.equal(inference.to_model_input(clear, 4), torch.ones(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        inference.to_model_input(np.zeros((6, 6), np.float32), 4)
