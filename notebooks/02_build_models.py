# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · The data pipeline and the four networks
#
# Chapter 6, **listings 6.2 to 6.5**: the transform, the `LoadData` data set and its
# `DataLoader`, then two discriminators and two generators. Nothing is trained here; we look at
# shapes and sizes so that notebook 03 holds no surprises.

# %%
# extra code – set-up: find the repository (on Colab, clone it first), print versions and device
import os, subprocess, sys
from pathlib import Path

REPO = os.environ.get("CH06_REPO", "genai-pytorch/ch06-cyclegan")  # a fork: python -m utils.repo OWNER/NAME
ON_DRIVE = False  # on Colab, True keeps files/ (data, checkpoints) on Google Drive: runs survive a disconnect
clone = Path(REPO.split("/")[-1])
if "google.colab" in sys.modules and not clone.exists():
    subprocess.run(f"git clone -q --depth 1 https://github.com/{REPO}"
                   " && pip install -q albumentations kagglehub", shell=True, check=True)
root = next(p for p in (Path.cwd(), *Path.cwd().parents, clone.resolve()) if (p / "utils" / "ch06util.py").is_file())
sys.path.insert(0, str(root))
from utils.notebook import start
env = start(drive=ON_DRIVE)

# %% [markdown]
# The split from notebook 01 (made again here if it is missing: the call is cheap when it exists).

# %%
data, sizes = env.data("celeba")
device = env.device

# %% [markdown]
# ## Listing 6.2: the transform
#
# `albumentations` resizes, flips half of the images and maps pixels from [0, 255] to [-1, 1]
# (the generator ends in `tanh`, whose outputs live there). `additional_targets` makes one call
# transform a *pair* of images.

# %%
import albumentations as albu
from albumentations.pytorch import ToTensorV2

transforms = albu.Compose(
    [albu.Resize(width=sizes.image_size, height=sizes.image_size),
     albu.HorizontalFlip(p=0.5),
     albu.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], max_pixel_value=255),
     ToTensorV2()],
    additional_targets={"image0": "image"})

# %% [markdown]
# ## Listing 6.3: `LoadData` and the `DataLoader`
#
# The two domains have different sizes; item `i` pairs the `i % len(A)`-th black-haired face with
# the `i % len(B)`-th blond one. The pairs are arbitrary: that is what *unpaired* means.

# %%
from torch.utils.data import DataLoader
from utils.ch06util import LoadData
from utils.show import show_rows

dataset = LoadData(root_A=[data.domain_A], root_B=[data.domain_B], transform=transforms)
loader = DataLoader(dataset, batch_size=1, shuffle=True, pin_memory=device.type == "cuda")
print(f"{dataset.A_len} black-haired and {dataset.B_len} blond faces: {len(dataset)} pairs per epoch")
A, B = next(iter(loader))
show_rows([A, B], ["A (black)", "B (blond)"], size=2.5);

# %% [markdown]
# ## Listing 6.4: two discriminators
#
# A PatchGAN discriminator does not say "real" or "fake" for the whole picture but for each
# patch: it outputs a map of probabilities, one per overlapping patch of the image. For the
# chapter's 256×256 images the map is 30×30; smaller images give smaller maps (the cell below
# prints the map for this run's image size).

# %%
import torch
from utils.ch06util import Discriminator, Generator, weights_init

disc_A = Discriminator().to(device)
disc_B = Discriminator().to(device)
weights_init(disc_A)
weights_init(disc_B);

# %%
x = torch.randn(1, 3, sizes.image_size, sizes.image_size, device=device)
side = disc_A(x).shape[-1]
print(f"Discriminator: {sum(p.numel() for p in disc_A.parameters()):,} parameters;",
      f"a {sizes.image_size}×{sizes.image_size} image gives a {side}×{side} map of probabilities")

# %% [markdown]
# ## Listing 6.5: two generators
#
# Each generator encodes the image (two stride-2 convolutions), transforms it with 9 residual
# blocks, and decodes it back to the input size.

# %%
gen_A = Generator(img_channels=3, num_residuals=9).to(device)
gen_B = Generator(img_channels=3, num_residuals=9).to(device)
weights_init(gen_A)
weights_init(gen_B);
with torch.no_grad():
    print(f"Generator: {sum(p.numel() for p in gen_A.parameters()):,} parameters;",
          f"{tuple(x.shape)} in, {tuple(gen_A(x).shape)} out")

# %% [markdown]
# ## What one residual block does
#
# A residual block returns `x + F(x)`: the skip path carries the input through unchanged and
# the block only adds a correction `F(x)`. Even with random weights, the output keeps much of
# the input (the correlation below), while `F(x)` alone has almost nothing in common with it.
# That is why nine blocks can be stacked without losing the face, and why a trained block
# only needs to learn the *change* from black to blond hair.

# %%
from utils.show import correlation, feature_maps, show_rows

with torch.no_grad():
    x = gen_A.down_blocks[1](gen_A.down_blocks[0](gen_A.initial(A.to(device))))
    change = gen_A.res_blocks[0].block(x)
    out = gen_A.res_blocks[0](x)
print(f"feature maps {tuple(x.shape)}: correlation with x of F(x) {correlation(x, change):.2f},"
      f" of x + F(x) {correlation(x, out):.2f}")
show_rows([feature_maps(x), feature_maps(change), feature_maps(out)], ["x", "F(x)", "x + F(x)"]);

# %% [markdown]
# ## What the generator cannot see: an overall colour cast
#
# The generator's first layer is a convolution followed by an instance norm, which subtracts
# each feature map's mean. Tint the whole picture (add the same amount to every pixel of a
# colour channel) and the convolution's outputs shift by a constant that the norm removes: the
# output does not change at all, whatever the weights (here they are still random, so the output
# is noise, but the same noise twice). A trained generator must therefore
# *guess* the overall colour of what it draws from the picture's content. Learning that guess
# is slow, and a wrong guess is the largest error in `make demo`'s scores (README, "What
# `make demo` shows").

# %%
from utils.evaluate import colour_offset_effect

tint = torch.tensor([0.3, -0.2, 0.1], device=device).view(1, 3, 1, 1)
faces = A.to(device)
with torch.no_grad():
    inputs = torch.cat([faces, faces + tint])
    rows = [inputs.cpu(), gen_A(inputs).cpu()]
print(f"largest change of the output for the tinted face: {colour_offset_effect(gen_A, faces):.1e}")
show_rows(rows, ["face, tinted", "gen_A(...)"], size=2.5);


# %% [markdown]
# ## A generator that can see colour (extra code – beyond the chapter)
#
# The fix is one line of `Generator`: drop the instance norm after the first convolution, so
# the overall colour reaches the rest of the network. `Generator(..., variant="no_first_norm")`
# builds it with the same weights' names and sizes (plus one flag that records the variant, so
# its saved weights never load into the chapter's generator by mistake):
#
# ```python
# nn.InstanceNorm2d(num_features),   # the chapter's first block
# nn.Identity(),                     # variant="no_first_norm"
# ```
#
# The same tint test on it: the output now changes with the tint (random weights again, so
# the change is noise too, but different noise). `make demo` compares the two generators
# (benchmarks/README.md, "A generator that can see colour").

# %%
torch.manual_seed(0)
gen_colour = weights_init(Generator(img_channels=3, num_residuals=9, variant="no_first_norm")).to(device)
with torch.no_grad():
    rows.append(gen_colour(inputs).cpu())
print(f"largest change of the variant's output for the tinted face: {colour_offset_effect(gen_colour, faces):.1e}")
show_rows(rows, ["face, tinted", "gen_A(...)", "variant(...)"], size=2.5);
