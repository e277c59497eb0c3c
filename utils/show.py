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


def _image_grid(cells: Sequence[Sequence[torch.Tensor | None]], size: float,
                column_titles: Sequence[str] = (), row_titles: Sequence[str] = (),
                title: str | None = None, widths: Sequence[float] | None = None) -> plt.Figure:
    """Images in a grid of `size`-inch squares with thin gaps: the figure is sized to its cells
    (no stretched margins), column titles above the first row, row titles left of the first
    column. `widths`: each column's width in cells (a narrow empty column separates groups)."""
    n_rows, n_cols = len(cells), max(len(row) for row in cells)
    widths = list(widths or [1.0] * n_cols)
    left = 1.1 if row_titles else 0.0  # inches for the row titles
    top = (0.3 if column_titles else 0.0) + (0.4 if title else 0.0)
    gap = 0.05  # of a cell
    width = left + size * (sum(widths) + gap * (n_cols - 1))
    height = top + size * (n_rows + gap * (n_rows - 1))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, height), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    fig.subplots_adjust(left=left / width, right=1, bottom=0, top=1 - top / height, wspace=gap, hspace=gap)
    for r, row in enumerate(cells):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(row) and row[c] is not None:
                ax.imshow(to_picture(row[c]))
    for c, label in enumerate(column_titles):
        axes[0][c].set_title(label, fontsize=10)
    for r, label in enumerate(row_titles):
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    if title:
        fig.suptitle(title, y=1 - 0.1 / height, va="top", fontsize=11)
    return fig


def _save(fig: plt.Figure, save_to: PathLike | None) -> plt.Figure:
    if save_to is not None:
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(save_to, dpi=100, bbox_inches="tight")
    return fig


def show_rows(rows: Sequence[torch.Tensor], titles: Sequence[str], columns: int | None = None,
              size: float = 1.6, save_to: PathLike | None = None, title: str | None = None) -> plt.Figure:
    """One row of images per batch (a domain's faces, a layer's feature maps), titled on the left.

    Batches of one image each (a photo and its translations, one sample of A and one of B)
    are one row instead, side by side, titled on top: a column of single images is mostly gap.
    No rows, or only empty ones, give a figure that says so (`nothing_to_show`).
    """
    if not rows or not any(len(r) for r in rows):
        return nothing_to_show("no images were given (an empty folder, or a selection that kept none?)")
    if all(len(batch) == 1 for batch in rows):
        return _save(_image_grid([[batch[0] for batch in rows]], size, column_titles=titles, title=title),
                     save_to)
    columns = columns or min(len(r) for r in rows) or max(len(r) for r in rows)
    cells = [[batch[c] if c < len(batch) else None for c in range(columns)] for batch in rows]
    return _save(_image_grid(cells, size, row_titles=titles, title=title), save_to)


def show_round_trips(stages: Sequence[torch.Tensor], titles: Sequence[str], faces_per_row: int | None = None,
                     size: float = 1.6, save_to: PathLike | None = None,
                     title: str | None = None) -> plt.Figure:
    """Round trips read left to right: each face on a row, its stages side by side.

    `stages` are batches of the same faces (originals, translations, translations back);
    `titles` name them above the columns. `faces_per_row` faces share a row (default: as many
    as fit six columns), so eight round trips of three images make a 4 x 6 grid, not 8 x 3.
    No faces give a figure that says so (`nothing_to_show`).
    """
    faces = min((len(stage) for stage in stages), default=0)
    if not faces:
        return nothing_to_show("no faces were given (an empty folder, or a selection that kept none?)")
    per_row = faces_per_row or max(1, min(faces, 6 // len(stages)))
    spacer = [None]  # a narrow empty column between two faces' round trips
    cells = [[cell for k, f in enumerate(range(start, min(start + per_row, faces)))
              for cell in (spacer if k else []) + [stage[f] for stage in stages]]
             for start in range(0, faces, per_row)]
    group = [1.0] * len(stages)
    widths = (group + [0.25]) * (per_row - 1) + group
    column_titles = ([*titles, ""] * per_row)[:len(widths)]
    return _save(_image_grid(cells, size, column_titles=column_titles, title=title, widths=widths), save_to)


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


# D_loss is the mean of the two discriminators' least-squares losses, each (D(real) - 1)^2 +
# D(fake)^2: a discriminator that cannot tell real from fake at all outputs 0.5 for both.
D_LOSS_AT_CHANCE = 0.5


def loss_summary(history, share: float = 0.2) -> str:
    """What the loss curves say, in numbers from this run: the discriminators' level over its
    last `share` against chance (0.5), and how far the cycle loss fell.

    Written from the run's own history, so the text beside the plot cannot disagree with it.
    """
    tail = history.tail(max(1, round(len(history) * share)))
    head = history.head(max(1, round(len(history) * share)))
    d_loss = float(tail["D_loss"].mean())
    if d_loss > 1.1 * D_LOSS_AT_CHANCE:
        edge = "the discriminators are still learning (above chance)"
    elif d_loss > 0.9 * D_LOSS_AT_CHANCE:
        edge = "the discriminators cannot tell real from fake"
    else:
        edge = "the discriminators still tell real from fake part of the time"
    return (f"Over the last {len(tail):,} iterations D_loss averages {d_loss:.2f}: at chance it is "
            f"{D_LOSS_AT_CHANCE} (both outputs 0.5), at 0 the discriminators are never fooled; here "
            f"{edge}. The cycle loss fell from {float(head['cycle_loss'].mean()):.3f} (first "
            f"{len(head):,} iterations) to {float(tail['cycle_loss'].mean()):.3f}.")


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
                show_round_trips([img.unsqueeze(0) for img in images], labels, size=2.2, title=title)
                plt.show()

        slider = widgets.IntSlider(min=0, max=len(examples) - 1, description="example")
        slider.observe(lambda change: draw(change["new"]), names="value")
        draw(0)
        display(widgets.VBox([slider, output]))
    stages = [torch.stack([images[k] for _, images, _ in examples]) for k in range(len(examples[0][1]))]
    show_round_trips(stages, examples[0][2], size=1.6, title="All examples (static view)")
    plt.show()


def show_pictures(pictures: Sequence, titles: Sequence[str], size: float = 3.0) -> plt.Figure:
    """PIL images (or (H, W, 3) arrays) of any sizes side by side, each `size` inches tall."""
    if not len(pictures):
        return nothing_to_show("no pictures were given")
    arrays = [np.asarray(p) for p in pictures]  # once: a phone photo is ~50 MB as an array
    widths = [a.shape[1] / a.shape[0] for a in arrays]
    gap, top = 0.04, 0.3  # of the mean picture's width; inches above for the titles
    width = size * sum(widths) * (1 + gap)
    fig, axes = plt.subplots(1, len(pictures), figsize=(width, size + top),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=size / (size + top), wspace=gap)
    for ax, array, title in zip(axes[0], arrays, titles, strict=True):
        ax.imshow(array)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    return fig
