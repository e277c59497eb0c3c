# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Get the faces and split them by hair colour
#
# Chapter 6, **listing 6.1**. CycleGAN learns from two *unpaired* piles of images: faces with
# black hair (domain A) and faces with blond hair (domain B). No face appears in both piles and
# nobody tells the model which blond face "belongs" to which black-haired one.
#
# This notebook gets CelebA (or, without it, the repository's built-in synthetic faces), sorts
# it into one folder per hair colour, and shows a few faces of each pile (figure 6.3). CelebA
# goes to `files/black/` and `files/blond/`; the built-in faces to `files/synthetic/black/` and
# `files/synthetic/blond/`. The split prints the folders it filled.
#
# *Fast mode:* set the environment variable `CH06_FAST=1` before starting Jupyter and every
# notebook runs in seconds on tiny built-in data.

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
# ## Downloading CelebA (optional)
#
# The chapter uses Kaggle's *CelebFaces Attributes* data set: 202,599 aligned faces and a CSV
# of 40 yes/no attributes per face, among them `Black_Hair` and `Blond_Hair`. Downloading it
# needs a free Kaggle account and an API token. Set `DOWNLOAD = True` to fetch it into
# `files/`; a download that is already there is not fetched again.

# %%
from utils import kaggle, prepare

DOWNLOAD = False  # set to True to download CelebA (about 1.4 GB) with your Kaggle token
if DOWNLOAD:
    try:
        kaggle.download("celeba", root=env.files)
    except kaggle.DownloadError as error:
        print(error.steps, error, sep="\n")  # offline or no token: how to get the files by hand

# %% [markdown]
# ## Listing 6.1: one folder per hair colour
#
# The chapter walks the attribute table row by row and *moves* every black-haired face into
# `files/black/` and every blond one into `files/blond/` (black wins when a face is labelled
# both). We keep its rule but select the rows in one vectorised step and **link** the files
# instead of moving them, so the download stays intact and the cell can be run again.
# We also hold out a few faces of each colour in a `test/` folder beside them (`files/test/`
# for CelebA) that training never sees.
#
# Without CelebA in `files/`, the built-in synthetic faces are generated and split the same way.

# %%
data = prepare.ensure_data("celeba", root=env.files, **env.data_options())

# %% [markdown]
# ## Figure 6.3: what the two domains look like
#
# Each row is one domain. The model will have to change the hair and nothing else.

# %%
from utils.show import show_domains

show_domains({"black (A)": data.domain_A, "blond (B)": data.domain_B}, count=8);
