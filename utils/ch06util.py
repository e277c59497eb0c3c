"""Chapter 6's classes and functions, under the chapter's names and signatures.

A reader can type the chapter's listings unchanged against this module. Where the
chapter's code is wrong it is fixed here and the chapter's call keeps working:

* `LoadData` takes `str` or `Path` folders with or without a trailing slash, lists only
  image files in sorted order, and names the folder or file when something is wrong.
* `weights_init(model)` and `model.apply(weights_init)` both initialise every convolution.
* `train_epoch` uses `torch.amp` (no deprecation warnings, mixed precision only where the
  device gains from it) and accepts the chapter's `torch.cuda.amp.GradScaler()` objects.
* `test` writes into the repository's `files/` folder whatever the working folder.

Code that is not in the book is marked `# extra code`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision.utils import save_image
from tqdm.auto import tqdm

from utils.images import NotAnImageError, PhotoNotFoundError, read_rgb_array
from utils.paths import files_dir
from utils.runtime import env_flag
from utils.speed import tune_backends

PathLike = str | os.PathLike

# extra code – the suffixes PIL decodes that a face folder may hold
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


# --------------------------------------------------------------------------- data (6.2)
def list_images(folder: PathLike) -> list[Path]:
    """Image files of one folder, sorted, so that runs and resumes see the same order.

    Hidden files (`.DS_Store`, macOS `._000001.jpg` shadows) and non-image files are
    skipped: the chapter's unfiltered `os.listdir` crashed training on them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        if folder.exists():  # a picture given where its folder is meant
            raise NotADirectoryError(f"{folder} is a file, not a folder of images: give the folder that "
                                     f"holds the images ({folder.parent}?).")
        if folder.is_symlink():
            raise FileNotFoundError(f"Image folder {folder} is a symbolic link that leads nowhere (or back "
                                    "to itself): point it at the folder of images, or remove it.")
        raise FileNotFoundError(
            f"Image folder {folder} does not exist. Split the data first "
            "(notebook 01, or `python -m utils.prepare split celeba --root files`)."
        )
    return sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def _as_folder_list(roots: PathLike | Iterable[PathLike]) -> list[Path]:
    if isinstance(roots, (str, os.PathLike)):
        return [Path(roots)]
    return [Path(r) for r in roots]


def read_rgb(path: PathLike) -> np.ndarray:
    """Decode one image as an RGB uint8 array, naming the file if it cannot be read.

    The same reader as a reader's own photos (`utils.images`): EXIF orientation applied,
    transparency on white, 16-bit scaled, so a training image looks as it does in a viewer.
    Failures are RuntimeErrors naming the file, which `utils.train` skips with a warning.
    """
    try:
        return read_rgb_array(path)
    except PhotoNotFoundError as error:
        raise RuntimeError(f"Image {path} is gone (not found): put it back or re-run the split.") from error
    except NotAnImageError as error:
        raise RuntimeError(
            f"Cannot decode image {path} ({error}). The file is damaged or not an image: "
            "replace it (download again) or move it out of the folder."
        ) from error


class LoadData(Dataset):
    """Unpaired images of two domains: item `i` is `(A[i % len(A)], B[i % len(B)])`.

    `root_A` and `root_B` are lists of folders as in the chapter (a single folder works
    too). With a transform built with `additional_targets={"image0": "image"}`, one call
    augments both images (B as `image`, A as `image0`), exactly as listing 6.2 does.
    """

    def __init__(self, root_A, root_B, transform=None):
        super().__init__()
        self.root_A = _as_folder_list(root_A)
        self.root_B = _as_folder_list(root_B)
        self.transform = transform
        self.A_images = self._collect(self.root_A, "A")
        self.B_images = self._collect(self.root_B, "B")
        self.A_len = len(self.A_images)
        self.B_len = len(self.B_images)
        self.len_data = max(self.A_len, self.B_len)

    @staticmethod
    def _collect(roots: Sequence[Path], domain: str) -> list[Path]:
        images = [path for root in roots for path in list_images(root)]
        if not images:
            where = ", ".join(str(r) for r in roots) or "(no folder given)"
            raise ValueError(
                f"Domain {domain} has no images in {where}. Put .jpg/.png files there "
                "or split the data first (notebook 01)."
            )
        return images

    def __len__(self) -> int:
        return self.len_data

    def __getitem__(self, index: int):
        A_img = read_rgb(self.A_images[index % self.A_len])
        B_img = read_rgb(self.B_images[index % self.B_len])
        if self.transform:
            augmentations = self.transform(image=B_img, image0=A_img)
            B_img = augmentations["image"]
            A_img = augmentations["image0"]
        return A_img, B_img


def make_transform(image_size: int = 256, flip: bool = True):
    """Listing 6.2's albumentations pipeline (extra code: the size is a parameter).

    Pixels go to [-1, 1] to match the generator's `tanh` output.
    """
    import albumentations as albu
    from albumentations.pytorch import ToTensorV2

    steps = [albu.Resize(image_size, image_size)]
    if flip:
        steps.append(albu.HorizontalFlip(p=0.5))
    steps += [albu.Normalize(mean=[0.5] * 3, std=[0.5] * 3, max_pixel_value=255), ToTensorV2()]
    # A and B may differ in size (two data sets, or a reader's photo): each is resized alone
    return albu.Compose(steps, additional_targets={"image0": "image"}, is_check_shapes=False)


# ------------------------------------------------------------------------ models (6.4)
class Block(nn.Module):
    """One discriminator stage: 4x4 conv, instance norm, LeakyReLU(0.2)."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 4, stride, 1, bias=True, padding_mode="reflect"),
            nn.InstanceNorm2d(out_channels),
            nn.LeakyReLU(0.2, inplace=True),
        )

    def forward(self, x):
        return self.conv(x)


class Discriminator(nn.Module):
    """PatchGAN: a 30x30 map of real/fake probabilities for a 256x256 image."""

    def __init__(self, in_channels=3, features=(64, 128, 256, 512)):
        super().__init__()
        features = list(features)
        self.initial = nn.Sequential(
            nn.Conv2d(in_channels, features[0], kernel_size=4, stride=2, padding=1,
                      padding_mode="reflect"),
            nn.LeakyReLU(0.2, inplace=True),
        )
        layers: list[nn.Module] = []
        in_channels = features[0]
        for feature in features[1:]:
            layers.append(Block(in_channels, feature, stride=1 if feature == features[-1] else 2))
            in_channels = feature
        layers.append(nn.Conv2d(in_channels, 1, kernel_size=4, stride=1, padding=1,
                                padding_mode="reflect"))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return torch.sigmoid(self.model(self.initial(x)))


class ConvBlock(nn.Module):
    """Conv (or transposed conv when `down=False`), instance norm, optional ReLU."""

    def __init__(self, in_channels, out_channels, down=True, use_act=True, **kwargs):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, padding_mode="reflect", **kwargs)
            if down
            else nn.ConvTranspose2d(in_channels, out_channels, **kwargs),
            nn.InstanceNorm2d(out_channels),
            nn.ReLU(inplace=True) if use_act else nn.Identity(),
        )

    def forward(self, x):
        return self.conv(x)


class ResidualBlock(nn.Module):
    """`x + F(x)`: the block only has to learn the change, which keeps faces intact."""

    def __init__(self, channels):
        super().__init__()
        self.block = nn.Sequential(
            ConvBlock(channels, channels, kernel_size=3, padding=1),
            ConvBlock(channels, channels, use_act=False, kernel_size=3, padding=1),
        )

    def forward(self, x):
        return x + self.block(x)


class Generator(nn.Module):
    """Encoder (two stride-2 convs), residual blocks, decoder (two transposed convs)."""

    def __init__(self, img_channels, num_features=64, num_residuals=9, *, variant="chapter",
                 mask_start=None):
        super().__init__()
        # extra code – beyond the chapter: `variant` (see GENERATOR_VARIANTS); "chapter" is the book's;
        # `mask_start`: a mask variant's mask before training (default MASK_START)
        self.variant = check_generator_variant(variant)
        parts = VARIANT_PARTS[variant]
        self.initial = nn.Sequential(
            nn.Conv2d(img_channels, num_features, kernel_size=7, stride=1, padding=3,
                      padding_mode="reflect"),
            nn.Identity() if "no_first_norm" in parts else nn.InstanceNorm2d(num_features),
            nn.ReLU(inplace=True),
        )
        self.down_blocks = nn.ModuleList([
            ConvBlock(num_features, num_features * 2, kernel_size=3, stride=2, padding=1),
            ConvBlock(num_features * 2, num_features * 4, kernel_size=3, stride=2, padding=1),
        ])
        self.res_blocks = nn.Sequential(
            *[ResidualBlock(num_features * 4) for _ in range(num_residuals)]
        )
        if "resize_conv" in parts:  # extra code – upsample, then convolve: no checkerboard
            self.up_blocks = nn.ModuleList([ResizeConvBlock(num_features * 4, num_features * 2),
                                            ResizeConvBlock(num_features * 2, num_features)])
        else:
            self.up_blocks = nn.ModuleList([
                ConvBlock(num_features * 4, num_features * 2, down=False, kernel_size=3, stride=2,
                          padding=1, output_padding=1),
                ConvBlock(num_features * 2, num_features, down=False, kernel_size=3, stride=2,
                          padding=1, output_padding=1),
            ])
        self.last = nn.Conv2d(num_features, img_channels, kernel_size=7, stride=1, padding=3,
                              padding_mode="reflect")
        self.has_mask = "mask" in parts
        if mask_start is not None and not self.has_mask:
            raise ValueError(f"mask_start is for a variant with a mask; {variant!r} has none.")
        if self.has_mask:  # extra code – one channel: where to change the input (sigmoid of it)
            self.mask = nn.Conv2d(num_features, 1, kernel_size=7, stride=1, padding=3,
                                  padding_mode="reflect")
            # a fixed logit added to the mask's: the start, whatever weights_init does to the bias
            start = MASK_START if mask_start is None else float(mask_start)
            if not 0 < start < 1:
                raise ValueError(f"mask_start must be between 0 and 1 (exclusive), got {mask_start!r}.")
            self.register_buffer("mask_offset", torch.logit(torch.tensor(start)))
        if variant != "chapter":  # extra code – a key the chapter's weights lack: no wrong-mode loads
            self.register_buffer(VARIANT_PREFIX + variant, torch.tensor(1))

    def forward(self, x, return_mask=False):
        # extra code – `return_mask`: also return the mask of a "mask" variant (None for the others)
        inputs = x  # extra code – kept for the "skip" and "mask" variants
        x = self.initial(x)
        for layer in self.down_blocks:
            x = layer(x)
        x = self.res_blocks(x)
        for layer in self.up_blocks:
            x = layer(x)
        if self.variant == "skip":  # extra code – predict the change, add it to the input
            out = torch.clamp(inputs + self.last(x), -1.0, 1.0)
        else:
            out = torch.tanh(self.last(x))
        mask = None
        if self.has_mask:  # extra code – the new content where the mask is 1, the input where 0
            mask = torch.sigmoid(self.mask(x) + self.mask_offset)
            out = mask * out + (1 - mask) * inputs
        return (out, mask) if return_mask else out


class ResizeConvBlock(nn.Module):
    """(extra code) Decoder step without a transposed convolution: 2x nearest-neighbour resize,
    3x3 conv, instance norm, ReLU. A stride-2 ConvTranspose2d with a 3x3 kernel overlaps
    unevenly, which paints a fine checkerboard (Odena et al., Distill 2016)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, padding_mode="reflect"),
            nn.InstanceNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.conv(x)


# extra code – beyond the chapter: generators that can see an image's overall colour, and
# generators that edit only where they must.
# The chapter's first InstanceNorm removes each feature map's mean, i.e. the image's mean
# colour, so the chapter's generator cannot keep it and backgrounds drift in colour.
# "no_first_norm" drops that one norm (no parameters added, same weights' keys);
# "skip" adds the predicted change to the input. The others are built on "no_first_norm":
# "mask" also predicts a one-channel mask m = sigmoid(conv(h)) and returns
# m * G(x) + (1 - m) * x, the input itself wherever m = 0 (Mejjati et al., NeurIPS 2018;
# AttentionGAN, Tang et al. 2019; train it with `train_step(..., lambda_mask=...)`);
# "resize_conv" upsamples by resize + convolution instead of ConvTranspose2d;
# "mask_resize_conv" does both. A variant's state_dict carries one extra key,
# VARIANT_PREFIX + its name (a flag buffer), so a file never loads strictly into the
# chapter's generator or another variant, and `generator_variant` reads which one it is.
VARIANT_PARTS: dict[str, frozenset[str]] = {
    "chapter": frozenset(),
    "no_first_norm": frozenset({"no_first_norm"}),
    "skip": frozenset({"skip"}),
    "mask": frozenset({"no_first_norm", "mask"}),
    "resize_conv": frozenset({"no_first_norm", "resize_conv"}),
    "mask_resize_conv": frozenset({"no_first_norm", "mask", "resize_conv"}),
}
GENERATOR_VARIANTS = tuple(VARIANT_PARTS)
# Where a mask variant's mask starts, everywhere, before its weights move it. Measured at the
# demo's settings (benchmarks/README.md): started at 0.5 the mask closed to 0 within a few
# hundred iterations (the identity, which the cycle and identity losses reward: accuracy 0);
# started at 0.95 the generator first learns to draw while the mask is open, and the mask
# then closes everywhere but the hair.
MASK_START = 0.95
VARIANT_PREFIX = "variant_"


def check_generator_variant(variant: str) -> str:
    """`variant` if it is one of GENERATOR_VARIANTS, else a ValueError that lists them."""
    if variant not in GENERATOR_VARIANTS:
        raise ValueError(f"Unknown generator variant {variant!r}; choose one of {GENERATOR_VARIANTS}.")
    return variant


def variant_has_mask(variant: str) -> bool:
    """Whether `Generator(..., variant=variant)` predicts a mask (and so can be mask-regularised)."""
    return "mask" in VARIANT_PARTS[check_generator_variant(variant)]


def generator_variant(state: dict) -> str:
    """The variant a Generator state_dict was saved from ("chapter" when it has no variant key)."""
    found = [key[len(VARIANT_PREFIX):] for key in state if key.startswith(VARIANT_PREFIX)]
    if not found:
        return "chapter"
    if len(found) > 1 or found[0] not in GENERATOR_VARIANTS:
        raise ValueError(f"Unknown generator variant {found}; this code knows {GENERATOR_VARIANTS[1:]}.")
    return found[0]


_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
               nn.ConvTranspose3d)


def weights_init(m):
    """Normal(0, 0.02) conv weights and zero biases, as in the CycleGAN paper.

    Works both as the chapter calls it, `weights_init(model)` (the chapter's version
    matched the *model's* class name and so did nothing), and as `model.apply(weights_init)`
    (the chapter's version crashed on `ConvBlock` and on InstanceNorm, which has no weight).
    Returns `m` so it can be chained.
    """
    convs = [m] if isinstance(m, _CONV_TYPES) else [x for x in m.modules()
                                                  if isinstance(x, _CONV_TYPES)]
    with torch.no_grad():
        for conv in convs:
            nn.init.normal_(conv.weight, 0.0, 0.02)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
    return m


# --------------------------------------------------------------------- training (6.6)
def test(i, A, B, fake_A, fake_B, out_dir: PathLike | None = None):
    """Save the current batch and its translations as `A{i}.png`, `fakeB{i}.png`, ...

    Pixels are mapped back from [-1, 1] with `x * 0.5 + 0.5`. The images go to the
    repository's `files/` (or `out_dir`), not to a `files/` relative to wherever the
    notebook happens to run.
    """
    out = Path(out_dir) if out_dir is not None else files_dir()
    out.mkdir(parents=True, exist_ok=True)
    for name, images in (("A", A), ("B", B), ("fakeA", fake_A), ("fakeB", fake_B)):
        save_image(images.detach().float() * 0.5 + 0.5, out / f"{name}{i}.png")


class ImageQuery(Protocol):
    """What `train_step` needs of an image history pool (see `utils.train.ImagePool`)."""

    def query(self, images: torch.Tensor) -> torch.Tensor: ...


# extra code – which precision a run trains in, and why (printed and recorded by every run)
CPU_AMP_ENV = "CH06_CPU_AMP"


@dataclass(frozen=True)
class Precision:
    """The type autocast computes in (None: plain float32) and the reason, in a few words."""

    dtype: torch.dtype | None
    reason: str

    @property
    def name(self) -> str:
        """'bfloat16', 'float16' or 'float32': what a run records in its metrics and checkpoint."""
        return "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


def pick_precision(device: torch.device | str, mixed_precision: bool = True) -> Precision:
    """The mixed-precision type that pays off on `device`, and why.

    CUDA: bfloat16 where the GPU computes it natively (Ampere and newer: no gradient
    scaling needed), float16 otherwise (a T4 or V100: fast fp16 tensor cores, bfloat16
    only emulated). CPU: bfloat16 where the CPU computes it natively (AMX or AVX512-BF16,
    `cpu_has_bf16`: about 1.7-1.9x faster per iteration, same held-out scores,
    benchmarks/README.md), float32 elsewhere (emulated bfloat16 runs about 3x slower).
    `CH06_CPU_AMP=0` keeps a CPU in float32; `CH06_CPU_AMP=1` forces bfloat16 even where
    it is emulated (for measuring). `mixed_precision=False` is plain float32 everywhere.
    """
    device = torch.device(device)
    if not mixed_precision:
        return Precision(None, "mixed precision turned off")
    if device.type == "cuda":
        if cuda_has_native_bf16(device):
            return Precision(torch.bfloat16, "this GPU computes bfloat16 natively")
        return Precision(torch.float16, "this GPU only emulates bfloat16; float16 with a gradient scaler")
    if device.type != "cpu":
        return Precision(None, f"no mixed precision on {device.type}")
    asked = os.environ.get(CPU_AMP_ENV, "").strip()
    forced = env_flag(CPU_AMP_ENV) if asked else None  # unset: decide; 1/0, true/false, ...: forced
    native = cpu_bf16_instructions()
    if forced is False:
        return Precision(None, f"{CPU_AMP_ENV}={asked} keeps the CPU in float32")
    if forced and not native:
        return Precision(torch.bfloat16,
                         f"forced by {CPU_AMP_ENV}={asked}; this CPU emulates bfloat16 (about 3x slower)")
    if native:
        return Precision(torch.bfloat16, f"this CPU computes bfloat16 natively ({', '.join(native)}); "
                                         f"float32 with --no-mixed-precision or {CPU_AMP_ENV}=0")
    return Precision(None, "this CPU has no AMX or AVX512-BF16, so bfloat16 would be emulated and slower")


def default_autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The mixed-precision type that pays off on `device`, or None for plain float32.

    bfloat16 on GPUs and CPUs that compute it natively, float16 on older GPUs, float32
    elsewhere: `pick_precision` says which and why.
    """
    return pick_precision(device).dtype


def cuda_has_native_bf16(device: torch.device | str = "cuda") -> bool:
    """Whether this GPU computes bfloat16 in hardware: compute capability 8.0+ (or ROCm).

    `torch.cuda.is_bf16_supported()` also says True on a T4 (capability 7.5), where
    bfloat16 tensors work but are emulated: slower than float16 with a gradient scaler.
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(torch.device(device))[0] >= 8


def cpu_bf16_instructions() -> list[str]:
    """The bfloat16 instructions this CPU has: 'AMX' and/or 'AVX512-BF16' (empty: emulated).

    Checks the instructions themselves: oneDNN's own `_is_mkldnn_bf16_supported()` also
    says True on plain AVX-512 CPUs, where it emulates bfloat16 and runs about 3x slower
    (benchmarks/README.md). Where both are present oneDNN runs the convolutions on AMX.
    """
    found = []
    for label, name in (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported")):
        check = getattr(torch.cpu, name, None)
        if check is not None and check():
            found.append(label)
    return found


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX512-BF16), not emulated."""
    return bool(cpu_bf16_instructions())


def make_grad_scaler(device: torch.device | str, autocast_dtype: torch.dtype | None | str = "auto"):
    """A `torch.amp.GradScaler` that is enabled only where it does something: float16.

    `autocast_dtype` is the type the run computes in (None: float32), "auto" the device's
    default (`default_autocast_dtype`).
    """
    device = torch.device(device)
    if autocast_dtype == "auto":
        autocast_dtype = default_autocast_dtype(device)
    return torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)


def autocast(device_type: str, dtype: torch.dtype | None):
    """Autocast to `dtype`, or plain float32 when `dtype` is None (`pick_precision`'s answer)."""
    return torch.autocast(device_type=device_type, dtype=dtype, enabled=dtype is not None)


def train_step(
    A: torch.Tensor,
    B: torch.Tensor,
    disc_A: nn.Module,
    disc_B: nn.Module,
    gen_A: nn.Module,
    gen_B: nn.Module,
    opt_disc: torch.optim.Optimizer,
    opt_gen: torch.optim.Optimizer,
    l1: nn.Module,
    mse: nn.Module,
    d_scaler,
    g_scaler,
    *,
    autocast_dtype: torch.dtype | None = None,
    lambda_cycle: float = 10.0,
    lambda_identity: float = 0.0,
    pool_A: ImageQuery | None = None,
    pool_B: ImageQuery | None = None,
    lambda_mask: float = 0.0,
    lambda_mask_tv: float = 0.0,
) -> dict[str, torch.Tensor]:
    """One iteration of listing 6.6: the discriminators' step, then the generators' step.

    The chapter's loop body, shared by `train_epoch`, `utils.train` and the benchmarks.
    Returns detached loss tensors (no host sync here, so CUDA keeps running ahead) and the
    batch's translations for `test()`.

    Options beyond the chapter (all off by default): an identity loss
    (`lambda_identity`, the paper uses 0.5 x `lambda_cycle`), image history pools
    that show the discriminators older fakes, and, for generators that predict a mask
    (`variant_has_mask`), a penalty on the translations' masks: `lambda_mask` x their mean
    (edit no more than needed) + `lambda_mask_tv` x their total variation (edit in one piece).
    """
    device_type = A.device.type
    regularise_masks = lambda_mask > 0 or lambda_mask_tv > 0  # extra code

    # 1. Discriminators: real -> 1, fake -> 0 (least squares on the sigmoid output).
    with autocast(device_type, autocast_dtype):
        if regularise_masks:  # extra code – the masks too, for their penalty below
            (fake_A, mask_A), (fake_B, mask_B) = gen_A(B, return_mask=True), gen_B(A, return_mask=True)
        else:
            fake_A = gen_A(B)
            fake_B = gen_B(A)
        seen_A = pool_A.query(fake_A.detach()) if pool_A is not None else fake_A.detach()
        seen_B = pool_B.query(fake_B.detach()) if pool_B is not None else fake_B.detach()
        D_A_real = disc_A(A)
        D_A_fake = disc_A(seen_A)
        D_A_loss = mse(D_A_real, torch.ones_like(D_A_real)) + mse(D_A_fake, torch.zeros_like(D_A_fake))
        D_B_real = disc_B(B)
        D_B_fake = disc_B(seen_B)
        D_B_loss = mse(D_B_real, torch.ones_like(D_B_real)) + mse(D_B_fake, torch.zeros_like(D_B_fake))
        D_loss = (D_A_loss + D_B_loss) / 2

    opt_disc.zero_grad(set_to_none=True)
    d_scaler.scale(D_loss).backward()
    d_scaler.step(opt_disc)
    d_scaler.update()

    # 2. Generators: fool the discriminators and survive the round trip. The
    # discriminators' weights get no gradient here: the chapter computed one and threw
    # it away at the next zero_grad, so skipping it changes nothing but the time.
    frozen = [p for p in (*disc_A.parameters(), *disc_B.parameters()) if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with autocast(device_type, autocast_dtype):
            D_A_fake = disc_A(fake_A)
            D_B_fake = disc_B(fake_B)
            loss_G_A = mse(D_A_fake, torch.ones_like(D_A_fake))
            loss_G_B = mse(D_B_fake, torch.ones_like(D_B_fake))
            cycle_B = gen_B(fake_A)
            cycle_A = gen_A(fake_B)
            cycle_B_loss = l1(B, cycle_B)
            cycle_A_loss = l1(A, cycle_A)
            G_loss = loss_G_A + loss_G_B + lambda_cycle * (cycle_A_loss + cycle_B_loss)
            identity_loss = torch.zeros((), device=A.device)
            if lambda_identity > 0:
                identity_loss = l1(A, gen_A(A)) + l1(B, gen_B(B))
                G_loss = G_loss + lambda_identity * identity_loss
            if regularise_masks:  # extra code
                G_loss = G_loss + sum(mask_penalty(m, lambda_mask, lambda_mask_tv) for m in (mask_A, mask_B))
    finally:
        for p in frozen:
            p.requires_grad_(True)

    opt_gen.zero_grad(set_to_none=True)
    g_scaler.scale(G_loss).backward()
    g_scaler.step(opt_gen)
    g_scaler.update()

    return {
        "D_loss": D_loss.detach().float(),
        "G_loss": G_loss.detach().float(),
        "cycle_loss": (cycle_A_loss + cycle_B_loss).detach().float(),
        "identity_loss": identity_loss.detach().float(),
        "fake_A": fake_A.detach(),
        "fake_B": fake_B.detach(),
    }


def mask_penalty(mask: torch.Tensor | None, weight: float, tv_weight: float) -> torch.Tensor:
    """(extra code) `weight` x the mask's mean + `tv_weight` x its total variation.

    The mean (an L1 norm: the mask is in [0, 1]) keeps the mask from growing to 1, where the
    generator would redraw every pixel; the total variation (mean absolute difference of
    neighbouring pixels) keeps it in smooth pieces rather than speckle.
    """
    if mask is None:
        raise ValueError("lambda_mask and lambda_mask_tv need a generator that predicts a mask "
                         f"(variants {[v for v in GENERATOR_VARIANTS if variant_has_mask(v)]}).")
    mask = mask.float()
    tv = (mask[..., 1:, :] - mask[..., :-1, :]).abs().mean() + (mask[..., 1:] - mask[..., :-1]).abs().mean()
    return weight * mask.mean() + tv_weight * tv


LOSS_KEYS = ("D_loss", "G_loss", "cycle_loss", "identity_loss")


def train_epoch(disc_A, disc_B, gen_A, gen_B, loader, opt_disc, opt_gen, l1, mse,
                d_scaler, g_scaler, device, *, sample_dir: PathLike | None = None,
                sample_every: int = 100, autocast_dtype: Any = "auto",
                max_batches: int | None = None, progress: bool = True,
                **step_options) -> dict[str, float]:
    """Listing 6.7: one pass over `loader`, returning the epoch's mean losses.

    As in the chapter, `test(i, ...)` saves samples every `sample_every` batches (into
    `files/` or `sample_dir`) and a tqdm bar shows `D_loss` and `G_loss`. Extra keyword
    arguments (`lambda_identity`, `pool_A`, ...) go to `train_step`.
    """
    device = torch.device(device)
    tune_backends(device)  # extra code – cuDNN autotuning on CUDA (benchmarks/README.md)
    if autocast_dtype == "auto":
        autocast_dtype = default_autocast_dtype(device)
    for net in (disc_A, disc_B, gen_A, gen_B):
        net.train()
    total = len(loader) if max_batches is None else min(max_batches, len(loader))
    sums = {key: torch.zeros((), device=device) for key in LOSS_KEYS}
    count = 0
    # extra code – islice ends the bar's own loop at `total`: a `break` out of a tqdm loop
    # closes it mid-iteration, which Jupyter's bar shows in red, as a failure
    loop = tqdm(islice(loader, total), total=total, leave=True, disable=not progress)
    for idx, (A, B) in enumerate(loop):
        A = A.to(device, non_blocking=True)
        B = B.to(device, non_blocking=True)
        out = train_step(A, B, disc_A, disc_B, gen_A, gen_B, opt_disc, opt_gen, l1, mse,
                         d_scaler, g_scaler, autocast_dtype=autocast_dtype, **step_options)
        for key in LOSS_KEYS:
            sums[key] += out[key]
        count += 1
        if idx % sample_every == 0:
            test(idx, A, B, out["fake_A"], out["fake_B"], out_dir=sample_dir)
        if idx % 10 == 0 or count == total:  # reading a loss syncs the GPU: not every batch
            loop.set_postfix(D_loss=out["D_loss"].item(), G_loss=out["G_loss"].item())
    loop.close()
    if count == 0:
        raise ValueError("The loader yielded no batches: is the data set empty?")
    return {key: (value / count).item() for key, value in sums.items()}
