"""The quality benchmarks' own arithmetic (their figures are in benchmarks/README.md)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.error_breakdown import breakdown
from tests.test_evaluate import BLACK, BLOND, SIZE, Tint, write_faces
from utils import evaluate as ev
from utils.ch06util import list_images


class Shift(nn.Module):
    """Adds one colour to the whole picture: a translation whose only error is a colour shift."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + torch.tensor([0.2, -0.1, 0.05]).view(1, 3, 1, 1)).clamp(-1, 1)


@pytest.mark.parametrize("gen", [Tint(), Shift()], ids=["tint", "shift"])
def test_error_breakdown_agrees_with_the_scores_and_sees_the_shift(tmp_path, gen):
    test, truth = write_faces(tmp_path, 6, BLACK, BLOND)
    scores = ev.evaluate_direction_with_truth(gen, gen, test, truth, image_size=SIZE)
    parts = breakdown(gen, list_images(test), truth, SIZE)
    assert parts["hair_accuracy"] == pytest.approx(scores["hair_accuracy"])
    assert parts["psnr_outside_hair"] == pytest.approx(scores["psnr_outside_hair"], rel=1e-5)
    # the accuracy is both conditions at once, so never above either of them
    assert parts["hair_accuracy"] <= min(parts["hair_colour_right"], parts["rest_kept_mae_below_0.1"])
    assert parts["psnr_without_colour_shift"] >= parts["psnr_outside_hair"]
    if isinstance(gen, Shift):  # all of its error is the shift (up to clamping at white and black)
        assert parts["psnr_without_colour_shift"] > parts["psnr_outside_hair"] + 15
        assert parts["mean_abs_colour_shift"] == pytest.approx((0.2 + 0.1 + 0.05) / 3 / 2, rel=0.1)



class TopRowsMask(nn.Module):
    """A stand-in mask variant that edits exactly the top `rows` rows (the toy faces' hair)."""

    has_mask = True

    def __init__(self, rows: int):
        super().__init__()
        self.rows = rows

    def forward(self, x: torch.Tensor, return_mask: bool = False):
        mask = torch.zeros_like(x[:, :1])
        mask[..., :self.rows, :] = 1
        return (x, mask) if return_mask else x


def test_demo_frontier_reads_a_mask_variants_mask_on_and_off_the_hair(tmp_path):
    from benchmarks.demo_frontier import mask_means
    from tests.test_evaluate import HAIR_ROWS
    from utils.ch06util import Generator

    test, truth = write_faces(tmp_path, 3, BLACK, BLOND)
    assert mask_means(Generator(3, 8, 1), test, truth, SIZE, torch.device("cpu")) is None
    assert mask_means(TopRowsMask(HAIR_ROWS), test, truth, SIZE, torch.device("cpu")) == (1.0, 0.0)
    hair, rest = mask_means(TopRowsMask(HAIR_ROWS // 2), test, truth, SIZE, torch.device("cpu"))
    assert hair == pytest.approx(0.5) and rest == 0.0
