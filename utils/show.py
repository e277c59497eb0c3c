"""What the notebooks display inline: image grids, domain samples, loss curves, a browser."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

PathLike = str | os.PathLike


def to_picture(image: torch.Tensor) -> np.ndarray:
    """A (3, H, W) tensor in [-1, 1] as an (H, W, 3) array in [0, 1] for `imshow`."""
    return (image.detach().float().cpu() * 0.5 + 0.5).clamp(0, 1).permute(1, 2, 0).numpy()


def correlation(u: torch.Tensor, v: torch.Tensor) -> float:
    """Pearson correlation of two tensors' values: how much of `u` survives in `v`."""
    u, v = u.detach().flatten().double(), v.detach().flatten().double()
    return torch.nn.functional.cosine_similarity(u - u.mean(), v - v.mean(), dim=0).item()


def feature_maps(features: torch.Tensor, count: int = 8) -> torch.Tensor:
    """The first `count` channels of the first item of a (N, C, H, W) batch, as grey images."""
    return features[0, :count, None].detach().expand(-1, 3, -1, -1).tanh()


def nothing_to_show(what: str) -> plt.Figure:
    """A small figure saying there is nothing to show, and why (printed too): what the helpers
    below draw when given no pictures, instead of matplotlib's or ipywidgets' error."""
    message = f"Nothing to show: {what}."
    print(message)
    fig, ax = plt.subplots(figsize=(4, 0.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10)
    return fig


def show_rows(rows: Sequence[torch.Tensor], titles: Sequence[str], columns: int | None = None,
              size: float = 1.6, save_to: PathLike | None = None, title: str | None = None) -> plt.Figure:
    """One row of images per batch (e.g. original / translated / back again), titled on the left.

    No rows, or only empty ones, give a figure that says so (`nothing_to_show`)."""
    if not rows or not any(len(r) for r in rows):
        return nothing_to_show("no images were given (an empty folder, or a selection that kept none?)")
    columns = columns or min(len(r) for r in rows) or max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(size * columns, size * len(rows)),
                             squeeze=False)
    for r, (batch, label) in enumerate(zip(rows, titles, strict=True)):
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(batch):
                ax.imshow(to_picture(batch[c]))
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    fig.tight_layout()
    if title:
        fig.suptitle(title, y=1.02)
    if save_to is not None:
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(save_to, dpi=100, bbox_inches="tight")
    return fig


def show_domains(folders: dict[str, PathLike], count: int = 8, image_size: int = 128) -> plt.Figure:
    """The chapter's figure 6.3: a few faces of each domain, one row per domain."""
    from utils.inference import load_batch

    rows = [load_batch(folder, count, image_size) for folder in folders.values()]
    return show_rows(rows, list(folders))


def plot_history(history, ax: plt.Axes | None = None, window: int = 25,
                 columns: Sequence[str] = ("D_loss", "G_loss", "cycle_loss", "identity_loss"),
                 save_to: PathLike | None = None) -> plt.Axes:
    """Loss curves against iterations, smoothed by a moving average (GAN losses are noisy)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for column in columns:
        if column in history and history[column].abs().sum() > 0:
            smooth = history[column].rolling(window, min_periods=1).mean()
            ax.plot(history["iteration"], smooth, label=column)
    ax.set(xlabel="iteration", ylabel=f"loss (moving average of {window})", yscale="log")
    ax.legend()
    ax.grid(alpha=0.3)
    if save_to is not None:
        ax.figure.savefig(save_to, dpi=100, bbox_inches="tight")
    return ax


def browse(examples: Sequence[tuple[str, Sequence[torch.Tensor], Sequence[str]]]) -> None:
    """Step through round trips with a slider; every example is also drawn below as a fallback.

    Widgets need a live Jupyter front end (they show nothing on GitHub or in a static
    export), so the static grids follow them.
    """
    from IPython.display import display

    if not examples:
        nothing_to_show("the list of examples is empty")
        plt.show()
        return
    try:
        import ipywidgets as widgets
    except ImportError:  # pragma: no cover - ipywidgets is in requirements.txt
        widgets = None
    if widgets is not None:
        output = widgets.Output()

        def draw(index: int) -> None:
            output.clear_output(wait=True)
            with output:
                title, images, labels = examples[index]
                show_rows([img.unsqueeze(0) for img in images], labels, size=2.2, title=title)
                plt.show()

        slider = widgets.IntSlider(min=0, max=len(examples) - 1, description="example")
        slider.observe(lambda change: draw(change["new"]), names="value")
        draw(0)
        display(widgets.VBox([slider, output]))
    columns = [torch.stack(list(images)) for _, images, _ in examples]
    show_rows([torch.stack([c[k] for c in columns]) for k in range(len(columns[0]))],
              examples[0][2], size=1.6, title="All examples (static view)")
    plt.show()


def show_pictures(pictures: Sequence, titles: Sequence[str], size: float = 3.0) -> plt.Figure:
    """PIL images (or (H, W, 3) arrays) of any sizes side by side, each `size` inches tall."""
    if not len(pictures):
        return nothing_to_show("no pictures were given")
    arrays = [np.asarray(p) for p in pictures]  # once: a phone photo is ~50 MB as an array
    widths = [a.shape[1] / a.shape[0] for a in arrays]
    fig, axes = plt.subplots(1, len(pictures), figsize=(size * sum(widths) + 0.3 * len(pictures), size),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, array, title in zip(axes[0], arrays, titles, strict=True):
        ax.imshow(array)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    return fig
