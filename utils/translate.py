"""Your own photo with black or blond hair: find the face, frame it like CelebA, translate it.

(Extra code – not in the book.) Usage::

    python -m utils.translate PHOTO --to blond|black [--out FILE] [--weights FOLDER] [--paste] [--force]

writes the translated face (CelebA-framed) and, with `--paste`, the whole photo with the
translated face warped back into place and blended in. Which generators: `--weights FOLDER`
if given, else the book's published pair in `files/` if it is there (`gen_black.pth`,
`gen_blond.pth`), else your own trained pair (notebook 03 writes `files/`, `make demo`
writes `files/demo/run/`). The command says which it used. The published generators were
trained at 256 px, so they run at 256 px; a trained pair runs at the size it was trained at
(read from the run's `checkpoint.pt`, when that run made these generators).

It writes only its own pictures: a file of the `--out` name that it did not write (a photo of
yours, say) is refused unless `--force` (`utils.ownership`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from utils.checkpoints import CHECKPOINT_GENERATORS, load_generator, trained_folders, trained_image_size
from utils.cli import UserError, command
from utils.faces import CELEBA_SIZE, Framed, frame_like_celeba, paste_back
from utils.images import picture_size, read_photo, read_photo_bytes
from utils.inference import round_trip, to_model_input, translate
from utils.ownership import output_file, refuse_foreign, write_owned
from utils.paths import files_dir
from utils.prepare import is_builtin_faces
from utils.published import PUBLISHED_IMAGE_SIZE, PUBLISHED_SIZES
from utils.runtime import pick_device

PathLike = str | os.PathLike

GEN_FILES = {"black": CHECKPOINT_GENERATORS["gen_A"], "blond": CHECKPOINT_GENERATORS["gen_B"]}
CHECKPOINT = "checkpoint.pt"  # what utils.train writes beside them (its record of the run)
PUBLISHED_SIZE = PUBLISHED_IMAGE_SIZE  # the book's generators were trained on 256x256 crops
PUBLISHED_SHAPE = (PUBLISHED_SIZES["num_features"], PUBLISHED_SIZES["num_residuals"])  # (64, 9)
DEMO_RUN = Path("demo") / "run"  # where `make demo` trains, under files/
OWNER = "utils.translate"  # how the pictures it writes are marked (utils.ownership)
MAX_SIDE = 4096  # photos are read at most this long (a 50 MP JPEG is decoded at 1/2 or 1/4)


@dataclass(frozen=True)
class Generators:
    """A pair of generators, the size they run at, and a line saying what they are."""

    black: nn.Module  # gen_A: makes black hair
    blond: nn.Module  # gen_B: makes blond hair
    image_size: int
    description: str
    folder: Path
    label: str = "generators"  # who made them, for the pictures' titles: "the book's generators", ...
    builtin_faces: bool = False  # trained on the built-in (cartoon) faces, by their run's record

    def photo_warning(self) -> str | None:
        """The sentence to read before a real photo's result, when these generators cannot do it."""
        if not self.builtin_faces:
            return None
        return ("These generators learnt from the built-in cartoon faces only, so a real photo comes out "
                "as noise: for photos, use the book's generators (`make weights`) or train on CelebA "
                "(notebook 01 downloads it).")

    def towards(self, colour: str) -> tuple[nn.Module, nn.Module]:
        """(generator to `colour`, generator back)."""
        if colour not in GEN_FILES:
            raise UserError(f"unknown hair colour {colour!r} — choose one of: {', '.join(GEN_FILES)}.")
        return (self.black, self.blond) if colour == "black" else (self.blond, self.black)


def _shape(gen: nn.Module) -> tuple[int, int]:
    return gen.initial[0].out_channels, len(gen.res_blocks)


def _folder_with_pair(files: Path, weights: PathLike | None) -> Path:
    if weights is not None:
        folder = Path(weights).expanduser()
        if folder.is_file():
            raise UserError(f"--weights {folder} is a file: give the folder that holds both "
                            f"{' and '.join(GEN_FILES.values())}.")
        missing = [name for name in GEN_FILES.values() if not (folder / name).is_file()]
        if missing:
            raise UserError(f"{', '.join(missing)} not found in {folder} — give the folder that "
                            f"holds both {' and '.join(GEN_FILES.values())}.")
        return folder
    folder = _default_folder(files)
    if folder is not None:
        return folder
    raise UserError(
        f"no generators found in {files} or {files / DEMO_RUN} — get the book's with `make "
        "weights` (or notebook 03's USE_PUBLISHED), or train your own with `make demo` or "
        "notebook 03; or pass --weights FOLDER.")


def pick_generators(files: PathLike | None = None, device: Any = "cpu", *, weights: PathLike | None = None,
                    default_size: int = PUBLISHED_SIZE) -> Generators:
    """The generators a reader's photo is translated with, and which they are (see the module
    docstring). `default_size` is used for a pair with neither a training record nor the
    published shape."""
    folder = _folder_with_pair(Path(files) if files is not None else files_dir(), weights)
    black, blond = (load_generator(folder / GEN_FILES[c], device) for c in ("black", "blond"))
    width, count = _shape(black)
    blocks = f"{count} residual block{'s' if count != 1 else ''}"
    pair = {"gen_A": black, "gen_B": blond}
    trained = trained_image_size(folder / CHECKPOINT, pair)
    builtin = False
    if trained is not None:
        size = trained
        folders = trained_folders(folder / CHECKPOINT, pair) or []
        builtin = bool(folders) and all(is_builtin_faces(f) for f in folders)
        label = "your generators" + (" (built-in faces)" if builtin else "")
        on = " on the built-in faces" if builtin else ""
        what = f"your trained generators ({width} wide, {blocks}, trained at {trained} px{on})"
    elif (width, count) == PUBLISHED_SHAPE:
        size, label = PUBLISHED_SIZE, "the book's generators"
        what = f"the book's published generators (run at {PUBLISHED_SIZE} px, as trained)"
    else:
        size, label = default_size, "generators of unknown training"
        what = (f"generators of unknown training ({width} wide, {blocks}, "
                f"no checkpoint.pt beside them; run at {default_size} px)")
    if black.variant != "chapter":  # extra code – say when they are not the chapter's network
        what += f", generator variant {black.variant!r}"
    return Generators(black, blond, size, f"{what} from {folder}", folder, label, builtin)


def to_picture(image: torch.Tensor, size: tuple[int, int] | None = None) -> Image.Image:
    """A (1, 3, H, W) or (3, H, W) tensor in [-1, 1] as a PIL image, resized to `size` if given."""
    pixels = (image.reshape(-1, *image.shape[-3:])[0].clamp(-1, 1) * 127.5 + 127.5).round()
    picture = Image.fromarray(pixels.byte().permute(1, 2, 0).numpy())
    return picture.resize(size, Image.BICUBIC) if size is not None else picture


@dataclass(frozen=True)
class PhotoResult:
    framed: Framed
    face: torch.Tensor  # (1, 3, S, S): the crop as the generators see it
    translated: torch.Tensor
    back: torch.Tensor | None  # translated, then translated back (None when not asked for)

    def pasted(self, onto: Image.Image | None = None) -> Image.Image:
        """The photo with the translated face blended back in (at the generator's resolution);
        `onto`: the same photo at another size (the full-size original of a reduced read)."""
        photo, face = self.framed.photo, self.framed.face
        if onto is not None:
            face = face.scaled(onto.width / photo.width, onto.height / photo.height)
            photo = onto
        return paste_back(photo, face, to_picture(self.translated))


def translate_photo(photo: Image.Image, gens: Generators, to: str, name: str = "the photo",
                    framed: Framed | None = None, round_trip_too: bool = True) -> PhotoResult:
    """Frame the largest face of `photo` like CelebA (or reuse `framed`), resize it as training
    does, translate it to `to` ("black" or "blond") and, with `round_trip_too`, back."""
    there, back = gens.towards(to)
    framed = framed if framed is not None else frame_like_celeba(photo, name)
    face = to_model_input(framed.crop, gens.image_size)
    if round_trip_too:
        return PhotoResult(framed, face, *round_trip(there, back, face))
    return PhotoResult(framed, face, translate(there, face), None)


def _default_folder(files: Path) -> Path | None:
    """`files/` or `files/demo/run/`, the first that holds both generators; else None."""
    return next((folder for folder in (files, files / DEMO_RUN)
                 if all((folder / name).is_file() for name in GEN_FILES.values())), None)


def has_generators(files: PathLike) -> bool:
    """Whether `pick_generators(files)` finds a pair (in `files/` or `files/demo/run/`)."""
    return _default_folder(Path(files)) is not None


BUNDLED_PHOTO = "astronaut (bundled test photo)"  # scikit-image's: Eileen Collins, NASA, public domain


def bundled_photo() -> Image.Image:
    """The photo that stands in for the reader's (fast mode, no upload): no download needed."""
    try:
        from skimage.data import astronaut
    except ImportError as error:
        raise UserError(f"scikit-image is not installed ({error}) — `pip install scikit-image`, "
                        "or give your own photo.") from error
    return Image.fromarray(astronaut())


def photo_from(upload: Any = None, path: PathLike | None = None) -> tuple[Image.Image, str]:
    """(photo, its name) for a notebook: an `ipywidgets.FileUpload`'s file if one was chosen,
    else the file at `path`, else the bundled test photo. Read by `utils.images` either way."""
    value = getattr(upload, "value", None) or ()
    if isinstance(value, dict):  # ipywidgets 7: {name: {"content": ..., "metadata": ...}}
        value = [{"name": name, **item} for name, item in value.items()]
    if value:
        item = value[0]
        name = item.get("name", "the upload")
        return read_photo_bytes(bytes(item["content"]), name, MAX_SIDE), name
    if path:
        return read_photo(path, MAX_SIDE), str(path)
    return bundled_photo(), BUNDLED_PHOTO


def face_size(gens: Generators) -> tuple[int, int]:
    """The written face's size: the generators' resolution with CelebA's 178:218 proportions."""
    return round(gens.image_size * CELEBA_SIZE[0] / CELEBA_SIZE[1]), gens.image_size


def _outputs(photo: Path, to: str, out: PathLike | None, paste: bool, force: bool) -> tuple[Path, Path]:
    """The face's file and the pasted photo's, checked before any work: a name the reader's own
    file holds (translate did not write it) is refused unless `force`; the photo itself always."""
    face = Path(out).expanduser() if out else files_dir() / "translated" / f"{photo.stem}_{to}.png"
    if face.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise UserError(f"--out {face}: end the name in .png or .jpg.")
    pasted = face.with_name(f"{face.stem}_pasted{face.suffix}")
    for path in (face, pasted):
        if path.resolve() == photo.resolve():
            raise UserError(f"--out {face} would overwrite your photo — choose another name.")
    output_file(face)
    if not force:
        refuse_foreign(face.parent, [face.name, *([pasted.name] if paste else [])], OWNER,
                       fix="Choose another --out name, move that file, or pass --force to replace it.")
    return face, pasted


def _save(picture: Image.Image, path: Path) -> None:
    """Write a picture and mark it as translate's (so a re-run may replace it, and only it)."""
    write_owned(path, OWNER, picture.save, fix="", force=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.translate", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", help="a photo with a face (jpg, png, ...; EXIF rotation respected)")
    parser.add_argument("--to", required=True, choices=sorted(GEN_FILES), help="the hair colour to give")
    parser.add_argument("--out", help="the translated face's file "
                        "(default: files/translated/PHOTO_COLOUR.png)")
    parser.add_argument("--weights", help="a folder holding gen_black.pth and gen_blond.pth")
    parser.add_argument("--paste", action="store_true",
                        help="also write the whole photo with the face blended back (OUT_pasted.png)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, mps")
    parser.add_argument("--force", action="store_true",
                        help="replace a file of the --out name that translate did not write")
    return parser


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    device = pick_device(args.device)  # a misspelt or absent device: one line, before any work
    photo_path = Path(args.photo).expanduser()
    full = picture_size(photo_path)  # also: "not found" / "not an image" before any weights load
    face_out, pasted_out = _outputs(photo_path, args.to, args.out, args.paste, args.force)
    gens = pick_generators(weights=args.weights, device=device)
    print(f"Using {gens.description}.")
    if gens.photo_warning():
        print(f"Note: {gens.photo_warning()}")
    photo = read_photo(photo_path, MAX_SIDE)
    if photo.size != full:
        print(f"The photo is {full[0]}×{full[1]}: read at {photo.width}×{photo.height}.")
    result = translate_photo(photo, gens, args.to, name=str(photo_path), round_trip_too=False)
    print(result.framed.describe())
    _save(to_picture(result.translated, face_size(gens)), face_out)
    print(f"Wrote {face_out} ({args.to} hair).")
    if args.paste:  # onto the photo at its own size, even when it was read smaller
        _save(result.pasted(read_photo(photo_path) if photo.size != full else None), pasted_out)
        print(f"Wrote {pasted_out} (the photo with the translated face blended in).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
