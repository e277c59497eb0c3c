# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Train the CycleGAN
#
# Chapter 6, **listings 6.6 and 6.7**: the losses, the optimisers, automatic mixed precision, and
# the training loop. The chapter trains one epoch of 48,472 pairs at 256×256: hours on a GPU,
# about a day on a laptop CPU. This notebook first runs the chapter's own loop for a few batches
# so you can see it work, then trains with `utils.train`, which keeps checkpoints (a disconnected
# Colab session picks up where it stopped) and plots the losses as it goes.

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
# The data (notebook 01) and the run's sizes: the chapter's on a GPU with CelebA, smaller ones on
# a CPU or with the built-in faces (printed below).

# %%
data, sizes = env.data("celeba")
device = env.device
sizes

# %% [markdown]
# ## Listing 6.6: networks, losses, optimisers and gradient scalers
#
# `gen_A` turns blond faces into black-haired ones (domain A) and `gen_B` the other way;
# `disc_A` and `disc_B` judge each domain. The adversarial loss is the mean squared error on the
# discriminators' outputs (least-squares GAN); the cycle-consistency loss is the L1 distance
# between a face and its round trip. One Adam optimiser serves both discriminators, one both
# generators.
#
# **Mixed precision.** The chapter uses `torch.cuda.amp`; `make_grad_scaler` builds the current
# `torch.amp.GradScaler`, enabled only where it does something (float16 on older GPUs); on a GPU
# with bfloat16 no scaling is needed. On a CPU that computes bfloat16 itself (AMX or
# AVX512-BF16: recent Intel Xeons, AMD Zen 4 and newer), `train_epoch` trains in bfloat16, which
# measured 2.3x faster per iteration than float32 at the chapter's sizes on a Sapphire Rapids Xeon,
# with the demo's held-out accuracies unchanged (`benchmarks/README.md`). Other CPUs stay in float32,
# because they only emulate bfloat16 (about 3x slower); `pick_precision(device)` says which and why.

# %%
import torch
from torch import nn
from utils.ch06util import Discriminator, Generator, make_grad_scaler, weights_init

disc_A = weights_init(Discriminator(features=sizes.disc_features).to(device))
disc_B = weights_init(Discriminator(features=sizes.disc_features).to(device))
gen_A = weights_init(Generator(3, sizes.num_features, sizes.num_residuals).to(device))
gen_B = weights_init(Generator(3, sizes.num_features, sizes.num_residuals).to(device))
l1 = nn.L1Loss()
mse = nn.MSELoss()
lr = 0.00001
opt_disc = torch.optim.Adam(list(disc_A.parameters()) + list(disc_B.parameters()), lr=lr, betas=(0.5, 0.999))
opt_gen = torch.optim.Adam(list(gen_A.parameters()) + list(gen_B.parameters()), lr=lr, betas=(0.5, 0.999))
d_scaler = make_grad_scaler(device)
g_scaler = make_grad_scaler(device)

# %% [markdown]
# ## Listing 6.7: the chapter's training loop
#
# `train_epoch` trains the discriminators, then the generators, on each pair, and every 100
# batches saves the current images with `test()`. A full epoch is long, so we run only a few
# batches here (`max_batches=None` runs the whole epoch, exactly as the chapter does).
#
# **How long:** 50 batches take a few seconds with the built-in faces; with CelebA on a laptop
# CPU (128 px, the chapter's 64-wide network) about 2–3 minutes, on a GPU seconds. Fewer
# batches (`max_batches=10`) or `CH06_FAST=1` make it quicker.

# %%
from torch.utils.data import DataLoader
from utils.ch06util import LoadData, make_transform, pick_precision, train_epoch

dataset = LoadData([data.domain_A], [data.domain_B], transform=make_transform(sizes.image_size))
loader = DataLoader(dataset, batch_size=1, shuffle=True, pin_memory=device.type == "cuda")
print("Precision:", pick_precision(device))  # extra code – what train_epoch computes in, and why
losses = train_epoch(disc_A, disc_B, gen_A, gen_B, loader, opt_disc, opt_gen, l1, mse,
                     d_scaler, g_scaler, device, max_batches=3 if env.fast else 50,
                     sample_dir=env.files / "chapter_samples")
losses

# %% [markdown]
# ## On a GPU: the fast path (extra code – not in the book)
#
# The chapter's loop keeps a GPU mostly waiting: at batch 1 it launches thousands of small
# kernels per iteration. `FAST_GPU = True` keeps the chapter's networks and losses and runs them
# compiled (`torch.compile` with CUDA graphs, which also fuses each instance norm, ReLU and
# reflect pad), in channels-last memory where that is exact, and at a batch size picked from
# the GPU's memory with the learning rate scaled to it (both printed, with the compile time).
# The iteration budget is divided by that batch, so the run sees as many faces as before. If
# compiling fails, it says so in one line and trains eagerly. On a CPU it changes nothing.
# Switch it before a run starts, not half-way through one.

# %%
FAST_GPU = False  # True on a CUDA GPU (Colab: Runtime > Change runtime type > GPU)

# %% [markdown]
# ## A run that survives disconnects
#
# `utils.train` runs the same training step with what a long run needs: a checkpoint every few
# minutes (run the cell again after a disconnect and it resumes where it stopped), a time or
# iteration budget, a loss history and sample grids.
#
# **On Colab**, the machine's disk is wiped when the session disconnects. Set `ON_DRIVE = True`
# in the first cell: it mounts your Google Drive and points `CH06_FILES` at `MyDrive/ch06` (or
# set `CH06_FILES` to a Drive folder of your choice before that cell), so data, checkpoints and
# generators live on Drive. After a disconnect, run the first cell, the data cell and this one
# again: training resumes from the last checkpoint on Drive. (Reading 48,472 faces from Drive is
# slower than from the local disk; copying CelebA there is a one-off.)
#
# With the built-in faces it uses the settings of `make demo` (smaller models, the CycleGAN
# paper's learning rate and identity loss), which learn the translation on a CPU in minutes.
#
# **How long:** with the built-in faces, 2,000 iterations take roughly 10–30 minutes on a laptop
# CPU (12 minutes for `make demo`'s same sizes on an idle 2-core CPU; 27 minutes on one that
# another program kept busy) and a few minutes on a GPU. With CelebA on a CPU (128 px, the
# chapter's network) it takes hours: use a GPU, or the chapter's published weights (the last
# section). Before training it picks the faster CPU thread count for this machine, and after a
# few iterations it prints its own estimate. To make it quick: `CH06_FAST=1` before starting
# Jupyter (tiny sizes, seconds), or fewer iterations, e.g. `train_config(..., iterations=300)`
# (a rougher translation), or a time budget, `minutes=10` (run the cell again to continue).

# %%
from utils.notebook import train_config
from utils.train import train

config = train_config(sizes, data.domain_A, data.domain_B, out=env.files, fast_gpu=FAST_GPU)
result = train(config)

# %% [markdown]
# ## The losses
#
# `D_loss` is the mean of the two discriminators' least-squares losses, (D(real) − 1)² + D(fake)²
# each: 0.5 when they cannot tell real from fake at all (every output 0.5), 0 when they are
# never fooled. In a balanced run it settles below 0.5, since the discriminators keep some edge
# (0.1–0.2 at the end of 2,000-iteration runs on the built-in faces here): the line printed
# with the plot gives your run's level. The cycle loss should fall steadily: the
# round trip is learned first.

# %%
from utils.show import loss_summary, plot_history

plot_history(result.history)
print(loss_summary(result.history))

# %% [markdown]
# ## Samples during training
#
# Each grid shows real A, its translation and its round trip, then the same for B.

# %%
from IPython.display import Image, display

for sample in sorted((env.files / "samples").glob("*.png"))[-2:]:
    print(sample.name)
    display(Image(filename=sample))

# %% [markdown]
# ## Or: the chapter's published weights
#
# Instead of training, you can use the generators the chapter's author trained on CelebA (one
# epoch at 256×256, 64 wide, 9 residual blocks). (Extra code – not in the book.) Set
# `USE_PUBLISHED = True` to do what `make weights` (`python -m utils.published fetch`) does:
# download the chapter's `hair.zip`, check that `gen_black.pth` and `gen_blond.pth` load into
# `Generator(3, 64, 9)`, and put both in `files/`. The pair your run just saved there is kept
# unless you also set `REPLACE_MINE = True` (your run's `checkpoint.pt` still holds it:
# `python -m utils.checkpoints extract files/checkpoint.pt --force` writes it back). Offline, the
# message says what to do by hand.

# %%
from utils.checkpoints import CheckpointError
from utils.published import fetch_published_generators, published_in_place

USE_PUBLISHED = False
REPLACE_MINE = False
if USE_PUBLISHED:
    try:
        fetch_published_generators(dest=env.files, force=REPLACE_MINE)
    except CheckpointError as error:
        print(error)
print("Generators:", *sorted(p.name for p in env.files.glob("gen_*.pth")),
      "(the chapter's published pair)" if published_in_place(env.files) else "(trained here)")
