"""The two Kaggle data sets and where their files lie under `files/`: what every data step shares.

The split (`utils.prepare`), the download (`utils.kaggle`) and the unpacking of a zip
fetched by hand (`utils.archive`) all need the same few facts: where a data set's CSV and
image folder belong, what is wrong when they are not there, what to tell a reader who has
to get them by hand, and how to put a file in place without touching the download. They
live here, so that those three modules import them without importing each other.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from utils.cli import SettingError, UserError, python_command

PathLike = str | os.PathLike

TMP_SUFFIX = ".prepare-tmp"  # a copy in progress; never trusted, removed by the next run


class DataLayoutError(UserError, FileNotFoundError):
    """A data file or folder is not where the chapter's layout expects it (`steps`: what to do
    by hand, printed above the one `error:` line)."""


# The 40 attribute columns of list_attr_celeba.csv, in the file's order (after image_id).
CELEBA_ATTRIBUTES: tuple[str, ...] = tuple((
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split())


@dataclass(frozen=True)
class DatasetSpec:
    """Where one Kaggle data set lives and how its files are laid out under `files/`."""

    kind: str
    title: str
    handle: str
    csv: str
    image_dir: str  # relative to root, the chapter's (doubly nested) folder
    id_column: str
    label_columns: tuple[str, ...]
    synthetic_dir: str
    tree: str  # the expected tree, for the manual steps

    @property
    def url(self) -> str:
        return f"https://www.kaggle.com/datasets/{self.handle}"

    @property
    def top_level(self) -> tuple[str, str]:
        """The two entries a download puts under root: the CSV and the image folder's top."""
        return self.csv, PurePosixPath(self.image_dir).parts[0]


CELEBA = DatasetSpec(
    kind="celeba",
    title="CelebA",
    handle="jessicali9530/celeba-dataset",
    csv="list_attr_celeba.csv",
    image_dir="img_align_celeba/img_align_celeba",
    id_column="image_id",
    label_columns=("Black_Hair", "Blond_Hair"),
    synthetic_dir="synthetic",
    tree=(
        "{root}/\n"
        "  list_attr_celeba.csv          (image_id + 40 attributes, values 1/-1)\n"
        "  img_align_celeba/\n"
        "    img_align_celeba/\n"
        "      000001.jpg ... 202599.jpg  (202,599 JPEG faces)\n"
        "  (list_bbox_celeba.csv and the other CSVs may stay; they are not used)"
    ),
)
GLASSES = DatasetSpec(
    kind="glasses",
    title="Glasses or No Glasses",
    handle="jeffheaton/glasses-or-no-glasses",
    csv="train.csv",
    image_dir="faces-spring-2020/faces-spring-2020",
    id_column="id",
    label_columns=("glasses",),
    synthetic_dir="synthetic_glasses",
    tree=(
        "{root}/\n"
        "  train.csv                     (id, v1 ... v512, glasses; ids 1-4500)\n"
        "  faces-spring-2020/\n"
        "    faces-spring-2020/\n"
        "      face-1.png ... face-5000.png\n"
        "  (test.csv may stay; it is not used)"
    ),
)
DATASETS = {spec.kind: spec for spec in (CELEBA, GLASSES)}

def dataset_spec(kind: str) -> DatasetSpec:
    """The layout of `kind` ("celeba" or "glasses"), or a clear error for anything else."""
    try:
        return DATASETS[kind]
    except KeyError:
        raise SettingError(f"Unknown data set {kind!r}: choose one of {sorted(DATASETS)}.") from None

# --------------------------------------------------------------------------- messages
def manual_steps(kind: str, root: PathLike) -> str:
    """What a reader does by hand when the automatic download is impossible."""
    spec = dataset_spec(kind)
    root = Path(root)
    return (
        f"To get {spec.title} by hand:\n"
        f"  1. Sign in at https://www.kaggle.com and open {spec.url}\n"
        f"  2. Click 'Download' and save the zip (Kaggle names it archive.zip).\n"
        f"  3. Unpack it safely into the layout below:\n"
        f"       {python_command('utils.prepare', 'unpack', 'PATH/TO/archive.zip', '--root', root)}\n"
        f"     or unzip it yourself so that you get exactly this tree:\n"
        + "\n".join("       " + line for line in spec.tree.format(root=root).splitlines())
        + "\n"
        f"To let `{python_command('utils.prepare', 'download', kind, '--root', root)}` fetch it instead,\n"
        f"create a Kaggle API token (kaggle.com -> Settings -> API -> Create New Token) and either\n"
        f"save kaggle.json in ~/.kaggle/ (Windows: C:\\Users\\<you>\\.kaggle\\), or set KAGGLE_USERNAME\n"
        f"and KAGGLE_KEY (or KAGGLE_API_TOKEN), or on Colab add them as notebook secrets."
    )


def layout_problems(kind: str, root: PathLike) -> list[str]:
    """Why `root` does not hold the download of `kind` (an empty list: it does)."""
    spec = dataset_spec(kind)
    root = Path(root)
    problems = []
    if not (root / spec.csv).is_file():
        problems.append(f"{root / spec.csv} is missing")
    image_dir = root / spec.image_dir
    if not image_dir.is_dir():
        single = root / PurePosixPath(spec.image_dir).parts[0]
        hint = ""
        if single.is_dir() and any(single.glob("*.[jp][pn]g")):
            hint = (f" ({single} holds the images directly; the chapter's layout nests them "
                    f"in a second folder of the same name: move them into {image_dir})")
        problems.append(f"the image folder {image_dir} is missing{hint}")
    elif not any(image_dir.iterdir()):
        problems.append(f"the image folder {image_dir} is empty")
    return problems


# --------------------------------------------------------------------------- checking files
# The first bytes of every format PIL reads for us: enough to tell an image from an empty
# file, an HTML error page or a text file saved under a .jpg name, without decoding it.
IMAGE_SIGNATURES: tuple[bytes, ...] = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"GIF87a", b"GIF89a", b"BM",  # GIF, BMP
    b"II*\x00", b"MM\x00*",  # TIFF
)


def image_problem(head: bytes, size: int) -> str | None:
    """Why a file whose first bytes are `head` (of `size` bytes) is no image, or None if it may be one.

    A cheap check, no decoding: an empty file, or one that does not start like a JPEG, PNG,
    GIF, BMP, TIFF or WebP. A truncated image still passes; `LoadData` names it if it fails.
    """
    if size == 0:
        return "empty: 0 bytes"
    if head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return None
    return f"not an image: it starts with {head[:12]!r}"


def inspect_source(path: PathLike) -> tuple[os.stat_result, str | None]:
    """The `stat` of a download's file and `image_problem` of its first bytes, in one open.

    Plain `os` calls, no buffered file object: run on 78,452 files, the overhead counts.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        return os.lstat(path), "a symbolic link that leads back to itself (a loop)"
    try:
        stat = os.fstat(fd)
        head = os.read(fd, 12) if stat.st_size else b""
    finally:
        os.close(fd)
    return stat, image_problem(head, stat.st_size)


# --------------------------------------------------------------------------- placing files
def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy under a temporary name, then rename: a crash never leaves a half file that looks done."""
    tmp = dst.with_name(dst.name + TMP_SUFFIX)
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def link_or_copy(src: PathLike, dst: PathLike) -> str:
    """Hard-link `src` to `dst`, or copy it where links fail (FAT, cross-device, some Windows shares).

    Returns "linked" or "copied". The source is never modified.
    """
    try:
        os.link(src, dst)
        return "linked"
    except FileExistsError:
        raise
    except OSError:
        _copy_atomic(Path(src), Path(dst))
        return "copied"
