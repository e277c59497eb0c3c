"""The chapter's names: checkpoint contract, fixed defects, one short training run."""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tests.conftest import write_images
from utils import ch06util as ch
from utils.cli import UserError
from utils.paths import REPO_ROOT, files_dir


# ---------------------------------------------------------------- checkpoint contract
# An independent, minimal re-statement of the chapter's architecture: the same module
# paths built from plain Sequentials, so a state_dict saved from the chapter's classes
# must load into ours with strict=True and compute the same function.
def _ref_conv_block(cin, cout, down=True, act=True, **kw):
    conv = nn.Conv2d(cin, cout, padding_mode="reflect", **kw) if down else nn.ConvTranspose2d(cin, cout, **kw)
    wrapper = nn.Module()
    wrapper.conv = nn.Sequential(conv, nn.InstanceNorm2d(cout), nn.ReLU() if act else nn.Identity())
    wrapper.forward = lambda x: wrapper.conv(x)
    return wrapper


class RefGenerator(nn.Module):
    def __init__(self, f=64, n_res=9):
        super().__init__()
        self.initial = nn.Sequential(nn.Conv2d(3, f, 7, 1, 3, padding_mode="reflect"),
                                     nn.InstanceNorm2d(f), nn.ReLU())
        self.down_blocks = nn.ModuleList([_ref_conv_block(f, 2 * f, kernel_size=3, stride=2, padding=1),
                                          _ref_conv_block(2 * f, 4 * f, kernel_size=3, stride=2, padding=1)])
        res = []
        for _ in range(n_res):
            r = nn.Module()
            r.block = nn.Sequential(_ref_conv_block(4 * f, 4 * f, kernel_size=3, padding=1),
                                    _ref_conv_block(4 * f, 4 * f, act=False, kernel_size=3, padding=1))
            res.append(r)
        self.res_blocks = nn.Sequential(*res)
        self.up_blocks = nn.ModuleList([
            _ref_conv_block(4 * f, 2 * f, down=False, kernel_size=3, stride=2, padding=1, output_padding=1),
            _ref_conv_block(2 * f, f, down=False, kernel_size=3, stride=2, padding=1, output_padding=1)])
        self.last = nn.Conv2d(f, 3, 7, 1, 3, padding_mode="reflect")

    def forward(self, x):
        x = self.initial(x)
        for blk in self.down_blocks:
            x = blk.conv(x)
        for r in self.res_blocks:
            x = x + r.block[1].conv(r.block[0].conv(x))
        for blk in self.up_blocks:
            x = blk.conv(x)
        return torch.tanh(self.last(x))


class RefDiscriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.initial = nn.Sequential(nn.Conv2d(3, 64, 4, 2, 1, padding_mode="reflect"), nn.LeakyReLU(0.2))
        blocks = []
        for cin, cout, stride in ((64, 128, 2), (128, 256, 2), (256, 512, 1)):
            b = nn.Module()
            b.conv = nn.Sequential(nn.Conv2d(cin, cout, 4, stride, 1, padding_mode="reflect"),
                                   nn.InstanceNorm2d(cout), nn.LeakyReLU(0.2))
            blocks.append(b)
        self.model = nn.Sequential(*blocks, nn.Conv2d(512, 1, 4, 1, 1, padding_mode="reflect"))

    def forward(self, x):
        x = self.initial(x)
        for b in list(self.model)[:-1]:
            x = b.conv(x)
        return torch.sigmoid(self.model[-1](x))


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_generator_matches_the_checkpoint_contract():
    gen = ch.Generator(img_channels=3, num_residuals=9)
    keys = list(gen.state_dict())
    assert len(keys) == 48
    assert _n_params(gen) == 11_378_179
    assert keys[:2] == ["initial.0.weight", "initial.0.bias"]
    assert "res_blocks.8.block.1.conv.0.weight" in keys
    assert "up_blocks.1.conv.0.bias" in keys and keys[-2:] == ["last.weight", "last.bias"]


def test_discriminator_matches_the_checkpoint_contract():
    disc = ch.Discriminator()
    assert len(disc.state_dict()) == 10
    assert _n_params(disc) == 2_764_737
    assert disc(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


@pytest.mark.parametrize("ours, ref, size", [
    (lambda: ch.Generator(3), RefGenerator, 64),
    (lambda: ch.Discriminator(), RefDiscriminator, 64),
])
def test_chapter_state_dict_loads_strictly_and_gives_the_same_outputs(ours, ref, size, tmp_path):
    torch.manual_seed(0)
    reference = ref().eval()
    torch.save(reference.state_dict(), tmp_path / "ref.pth")
    model = ours().eval()
    model.load_state_dict(torch.load(tmp_path / "ref.pth", weights_only=True), strict=True)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-6)


def test_generator_keeps_the_image_size_and_range():
    gen = ch.Generator(3, num_features=8, num_residuals=2)
    y = gen(torch.randn(1, 3, 32, 32))
    assert y.shape == (1, 3, 32, 32)
    assert y.abs().max() <= 1


# --------------------------------------------------------------------- weights_init
def _convs(model):
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


@pytest.mark.parametrize("call", ["chapter", "apply"])
@pytest.mark.parametrize("make", [lambda: ch.Generator(3), lambda: ch.Discriminator()])
def test_weights_init_initialises_every_conv_both_ways(call, make):
    torch.manual_seed(0)
    model = make()
    if call == "chapter":
        assert ch.weights_init(model) is model
    else:
        model.apply(ch.weights_init)
    convs = _convs(model)
    assert convs
    for conv in convs:
        assert torch.count_nonzero(conv.bias) == 0
        std = conv.weight.std().item()
        # PyTorch's default init gives std 1/sqrt(3 * fan_in): far from 0.02 for the first
        # layers (e.g. 0.06 for the 7x7x3 input conv) and tiny for the 256-channel ones.
        assert 0.016 < std < 0.024, (conv, std)
        assert abs(conv.weight.mean().item()) < 0.01


def test_generator_cannot_see_a_colour_offset_of_its_input():
    # conv -> InstanceNorm subtracts each feature map's mean, and a constant added to a colour
    # channel only shifts those means: the generator must guess an image's overall colour
    # (benchmarks/copy_ceiling.py measures what that costs)
    torch.manual_seed(0)
    gen = ch.weights_init(ch.Generator(3, num_features=8, num_residuals=1)).eval()
    x = torch.rand(2, 3, 32, 32) * 1.2 - 0.6
    offset = torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(gen(x + offset), gen(x), rtol=0, atol=1e-5)
        ramp = torch.linspace(0, 0.3, 32).view(1, 1, 1, 32)  # not a constant: the generator sees it
        assert (gen(x + ramp) - gen(x)).abs().max() > 1e-3


def test_weights_init_accepts_blocks_and_norm_layers():
    for module in (ch.ConvBlock(3, 4, kernel_size=3), ch.ResidualBlock(4), ch.Block(3, 4, 2),
                   nn.InstanceNorm2d(4), nn.ReLU()):
        ch.weights_init(module)  # the chapter's version crashed on these


# --------------------------------------------------------------------------- LoadData
def test_loaddata_pairs_by_modulo_in_sorted_order(domains):
    a, b = domains
    data = ch.LoadData([a], [b])
    assert len(data) == 5
    assert data.A_images == sorted(a.iterdir()) and data.B_images == sorted(b.iterdir())
    for i in range(len(data)):
        A_img, B_img = data[i]
        expected_A = np.asarray(__import__("PIL.Image").Image.open(data.A_images[i % 3]).convert("RGB"))
        assert np.array_equal(A_img, expected_A)
        assert B_img.shape == (24, 20, 3)
    assert np.array_equal(data[3][0], data[0][0])  # A wraps around


@pytest.mark.parametrize("form", [str, Path, lambda p: str(p) + os.sep, lambda p: [str(p)]])
def test_loaddata_accepts_str_path_and_trailing_slash(domains, form):
    a, b = domains
    data = ch.LoadData(form(a), form(b))
    assert (data.A_len, data.B_len) == (3, 5)


def test_loaddata_skips_hidden_and_non_image_files(domains):
    a, b = domains
    (a / ".DS_Store").write_bytes(b"\0\1junk")
    (a / "._000001.jpg").write_bytes(b"appledouble")
    (a / "notes.txt").write_text("not an image")
    (a / "subfolder.png").mkdir()
    data = ch.LoadData([a], [b])
    assert data.A_len == 3
    data[0]


def test_loaddata_collects_several_folders(tmp_path):
    write_images(tmp_path / "A1", 2)
    write_images(tmp_path / "A2", 2, start=10)
    write_images(tmp_path / "B", 1)
    data = ch.LoadData([tmp_path / "A1", tmp_path / "A2"], [tmp_path / "B"])
    assert data.A_len == 4 and len(data) == 4


def test_loaddata_names_an_empty_domain(tmp_path, domains):
    a, _ = domains
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"Domain B has no images in .*empty"):
        ch.LoadData([a], [empty])


def test_loaddata_names_a_missing_folder(tmp_path, domains):
    a, _ = domains
    with pytest.raises(FileNotFoundError, match=r"nowhere.*does not exist"):
        ch.LoadData([a], [tmp_path / "nowhere"])


def test_loaddata_names_a_corrupt_image(domains):
    a, b = domains
    broken = b / "000003.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    data = ch.LoadData([a], [b])
    with pytest.raises(RuntimeError, match=r"Cannot decode image .*000003\.png"):
        data[2]
    assert broken.exists()  # never deleted


def test_transform_augments_both_images_together(domains):
    a, b = domains
    data = ch.LoadData([a], [b], transform=ch.make_transform(16))
    A_img, B_img = data[0]
    assert A_img.shape == B_img.shape == (3, 16, 16)
    assert A_img.dtype == torch.float32
    assert -1 <= A_img.min() and A_img.max() <= 1


# ------------------------------------------------------------------ test() and paths
def test_test_writes_into_files_whatever_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CH06_FILES", str(tmp_path / "elsewhere"))
    x = torch.zeros(1, 3, 8, 8)
    ch.test(7, x, x, x, x)
    names = sorted(p.name for p in (tmp_path / "elsewhere").iterdir())
    assert names == ["A7.png", "B7.png", "fakeA7.png", "fakeB7.png"]
    assert not (tmp_path / "files").exists()


def test_files_dir_is_anchored_to_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CH06_FILES", raising=False)
    assert files_dir() == REPO_ROOT / "files"
    assert (REPO_ROOT / "utils" / "ch06util.py").is_file()


def test_test_maps_pixels_back_from_minus_one_to_one(tmp_path):
    from PIL import Image
    white, black = torch.ones(1, 3, 4, 4), -torch.ones(1, 3, 4, 4)
    ch.test(0, white, black, white, black, out_dir=tmp_path)
    assert np.asarray(Image.open(tmp_path / "A0.png")).min() == 255
    assert np.asarray(Image.open(tmp_path / "B0.png")).max() == 0


# ------------------------------------------------------------------------ train_epoch
def _tiny_setup(domains, scalers="project"):
    a, b = domains
    torch.manual_seed(0)
    data = ch.LoadData([a], [b], transform=ch.make_transform(32, flip=False))
    loader = torch.utils.data.DataLoader(data, batch_size=1, shuffle=False)
    disc_A, disc_B = ch.Discriminator(features=(8, 16, 32, 64)), ch.Discriminator(features=(8, 16, 32, 64))
    gen_A, gen_B = ch.Generator(3, 8, 2), ch.Generator(3, 8, 2)
    for net in (disc_A, disc_B, gen_A, gen_B):
        ch.weights_init(net)
    opt_disc = torch.optim.Adam([*disc_A.parameters(), *disc_B.parameters()], lr=1e-3, betas=(0.5, 0.999))
    opt_gen = torch.optim.Adam([*gen_A.parameters(), *gen_B.parameters()], lr=1e-3, betas=(0.5, 0.999))
    if scalers == "chapter":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d_scaler, g_scaler = torch.cuda.amp.GradScaler(), torch.cuda.amp.GradScaler()
    else:
        d_scaler, g_scaler = ch.make_grad_scaler("cpu"), ch.make_grad_scaler("cpu")
    nets = (disc_A, disc_B, gen_A, gen_B)
    return nets, loader, opt_disc, opt_gen, nn.L1Loss(), nn.MSELoss(), d_scaler, g_scaler


@pytest.mark.parametrize("scalers", ["project", "chapter"])
def test_train_epoch_with_the_chapters_twelve_arguments_trains_all_four_networks(
        domains, tmp_path, monkeypatch, scalers):
    monkeypatch.setenv("CH06_FILES", str(tmp_path / "samples"))
    nets, loader, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler = _tiny_setup(domains, scalers)
    before = [[p.detach().clone() for p in net.parameters()] for net in nets]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        losses = ch.train_epoch(*nets, loader, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler,
                                "cpu", max_batches=2, progress=False)
    for net, old in zip(nets, before, strict=True):
        assert all(not torch.equal(p, q) for p, q in zip(net.parameters(), old, strict=True)), net.__class__
    assert set(losses) >= {"D_loss", "G_loss"}
    assert all(np.isfinite(v) for v in losses.values())
    assert losses["G_loss"] > 10 * losses["cycle_loss"] / 2 > 0  # cycle weight 10 is in G_loss
    assert (tmp_path / "samples" / "fakeB0.png").is_file()  # test() at batch 0


def test_train_epoch_returns_the_mean_of_its_batches(domains, tmp_path):
    nets, loader, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler = _tiny_setup(domains)
    torch.manual_seed(1)
    losses = ch.train_epoch(*nets, loader, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler,
                            "cpu", max_batches=3, progress=False, sample_dir=tmp_path)
    nets2, loader2, opt_disc2, opt_gen2, *_ = _tiny_setup(domains)
    torch.manual_seed(1)
    per_batch = []
    for i, (A, B) in enumerate(loader2):
        if i == 3:
            break
        out = ch.train_step(A, B, *nets2, opt_disc2, opt_gen2, l1, mse, d_scaler, g_scaler,
                            autocast_dtype=ch.default_autocast_dtype("cpu"))  # what train_epoch picks
        per_batch.append(out["D_loss"].item())
    assert losses["D_loss"] == pytest.approx(sum(per_batch) / 3, rel=1e-5)


def test_train_epoch_stopped_at_max_batches_ends_its_jupyter_bar_green(domains, tmp_path, monkeypatch):
    """Jupyter's bar turns red ('danger') when its loop is left early or closed short of its
    total: a run that stops where it was told to must not look like a failure."""
    from tqdm.notebook import tqdm as notebook_tqdm

    styles: list[str] = []

    class RecordingBar(notebook_tqdm):
        def display(self, *args, bar_style=None, **kwargs):  # what the bar shows, style included
            if bar_style:
                styles.append(bar_style)
            return super().display(*args, bar_style=bar_style, **kwargs)

    monkeypatch.setattr(ch, "tqdm", RecordingBar)
    nets, loader, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler = _tiny_setup(domains)
    assert len(loader) > 2
    ch.train_epoch(*nets, loader, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler, "cpu",
                   max_batches=2, sample_dir=tmp_path)
    gc.collect()  # a generator left by `break` is closed when collected: that is when it turns red
    assert styles and styles[-1] == "success" and "danger" not in styles, styles


def test_discriminators_are_trainable_again_after_the_generator_step(domains):
    """The G step freezes the discriminators' weights; the next D step must still train them."""
    nets, loader, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler = _tiny_setup(domains)
    A, B = next(iter(loader))
    ch.train_step(A, B, *nets, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler)
    disc_A, disc_B = nets[:2]
    assert all(p.requires_grad for p in (*disc_A.parameters(), *disc_B.parameters()))
    assert all(p.grad is not None for p in disc_A.parameters())  # from the D step


def test_identity_loss_is_logged_only_when_asked(domains):
    nets, loader, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler = _tiny_setup(domains)
    A, B = next(iter(loader))
    plain = ch.train_step(A, B, *nets, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler)
    assert plain["identity_loss"].item() == 0
    with_id = ch.train_step(A, B, *nets, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler,
                            lambda_identity=5.0)
    assert with_id["identity_loss"].item() > 0


def test_grad_scalers_are_torch_amp_and_off_where_useless():
    scaler = ch.make_grad_scaler("cpu")
    assert isinstance(scaler, torch.amp.GradScaler)
    assert not scaler.is_enabled()
    assert not ch.make_grad_scaler("cpu", torch.bfloat16).is_enabled()
    assert not ch.make_grad_scaler("cpu", None).is_enabled()  # None: float32, not "the default"
    assert ch.make_grad_scaler("cpu", torch.float16).is_enabled()
    assert ch.default_autocast_dtype("cpu") in (None, torch.bfloat16)


# ------------------------------------------------------------ precision on each kind of CPU
# The four kinds of x86 CPU a reader may have, as torch.cpu reports them.
CPU_KINDS = {
    "avx2_only": {"_is_avx512_supported": False, "_is_avx512_bf16_supported": False,
                  "_is_amx_tile_supported": False},
    "avx512_without_bf16": {"_is_avx512_supported": True, "_is_avx512_bf16_supported": False,
                            "_is_amx_tile_supported": False},
    "avx512_bf16": {"_is_avx512_supported": True, "_is_avx512_bf16_supported": True,
                    "_is_amx_tile_supported": False},
    "amx": {"_is_avx512_supported": True, "_is_avx512_bf16_supported": True,
            "_is_amx_tile_supported": True},
}
NATIVE = {"avx2_only": [], "avx512_without_bf16": [], "avx512_bf16": ["AVX512-BF16"],
          "amx": ["AMX", "AVX512-BF16"]}


@pytest.fixture(params=sorted(CPU_KINDS))
def cpu_kind(request, monkeypatch):
    """Fakes one kind of CPU's instruction checks; the test sees the kind's name."""
    monkeypatch.delenv(ch.CPU_AMP_ENV, raising=False)
    for name, value in CPU_KINDS[request.param].items():
        monkeypatch.setattr(torch.cpu, name, lambda value=value: value, raising=False)
    return request.param


def test_a_cpu_trains_in_bfloat16_exactly_where_it_computes_it(cpu_kind):
    native = NATIVE[cpu_kind]
    assert ch.cpu_bf16_instructions() == native
    assert ch.cpu_has_bf16() is bool(native)
    precision = ch.pick_precision("cpu")
    assert precision.dtype == ch.default_autocast_dtype("cpu") == (torch.bfloat16 if native else None)
    assert precision.name == ("bfloat16" if native else "float32")
    assert not ch.make_grad_scaler("cpu").is_enabled()  # bfloat16 has float32's range
    if native:
        assert all(label in precision.reason for label in native)
        assert "--no-mixed-precision" in precision.reason  # says how to get float32
    else:
        assert "emulated" in precision.reason


def test_no_mixed_precision_is_float32_on_every_cpu(cpu_kind):
    precision = ch.pick_precision("cpu", mixed_precision=False)
    assert precision.dtype is None and precision.name == "float32"
    assert "off" in precision.reason


@pytest.mark.parametrize("value, native_dtype, emulated_dtype", [
    ("0", None, None),                      # opt out: float32 everywhere
    ("1", torch.bfloat16, torch.bfloat16),  # forced, even where emulated (for measuring)
    ("", torch.bfloat16, None),             # empty: as if unset
])
def test_the_cpu_amp_variable_overrides_the_choice(cpu_kind, monkeypatch, value, native_dtype,
                                                   emulated_dtype):
    monkeypatch.setenv(ch.CPU_AMP_ENV, value)
    precision = ch.pick_precision("cpu")
    assert precision.dtype == (native_dtype if NATIVE[cpu_kind] else emulated_dtype)
    if value == "0" or (value == "1" and not NATIVE[cpu_kind]):  # the reason names the override
        assert f"{ch.CPU_AMP_ENV}={value}" in precision.reason


def test_a_wrong_cpu_amp_value_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(ch.CPU_AMP_ENV, "maybe")
    with pytest.raises(UserError, match="CH06_CPU_AMP='maybe' is not understood.*=1.*=0.*unset"):
        ch.default_autocast_dtype("cpu")


def test_other_devices_train_in_float32():
    assert ch.pick_precision("meta").dtype is None
    assert "meta" in ch.pick_precision("meta").reason


def test_train_epoch_trains_in_the_cpus_precision(domains, tmp_path, monkeypatch, cpu_kind):
    seen = []
    real = ch.train_step

    def spy(*args, **kwargs):
        seen.append(kwargs["autocast_dtype"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ch, "train_step", spy)
    nets, loader, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler = _tiny_setup(domains)
    ch.train_epoch(*nets, loader, opt_disc, opt_gen, l1, mse, d_scaler, g_scaler, "cpu",
                   max_batches=1, progress=False, sample_dir=tmp_path)
    assert seen == [torch.bfloat16 if NATIVE[cpu_kind] else None]


def test_loaddata_pairs_images_of_different_sizes(tmp_path):
    write_images(tmp_path / "A", 2, size=(20, 24))
    write_images(tmp_path / "B", 2, size=(40, 30))
    data = ch.LoadData(tmp_path / "A", tmp_path / "B", transform=ch.make_transform(16))
    A_img, B_img = data[1]
    assert A_img.shape == B_img.shape == (3, 16, 16)


def test_training_images_are_read_like_a_readers_photo(tmp_path):
    """LoadData's reader shares utils.images: transparency on white, EXIF turned, missing named."""
    from utils.ch06util import read_rgb

    clear = Image.new("RGBA", (8, 6), (0, 0, 0, 0))
    clear.save(tmp_path / "clear.png")
    assert (read_rgb(tmp_path / "clear.png") == 255).all()  # not black

    turned = Image.new("RGB", (8, 6), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    turned.save(tmp_path / "turned.jpg", exif=exif)
    assert read_rgb(tmp_path / "turned.jpg").shape == (8, 6, 3)

    with pytest.raises(RuntimeError, match=r"gone \(not found\)"):
        read_rgb(tmp_path / "missing.jpg")


# ------------------------------------------- generator variants (extra code – beyond the chapter)
@pytest.mark.parametrize("variant", [v for v in ch.GENERATOR_VARIANTS if v != "chapter"])
def test_generator_variants_see_a_colour_offset(variant):
    # the same test the chapter's generator passes with a change of ~1e-6 (above)
    torch.manual_seed(0)
    gen = ch.weights_init(ch.Generator(3, num_features=8, num_residuals=1, variant=variant)).eval()
    x = torch.rand(2, 3, 32, 32) * 1.2 - 0.6
    offset = torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert (gen(x + offset) - gen(x)).abs().max() > 1e-4
        assert gen(x).abs().max() <= 1


def test_chapter_generator_is_unchanged_by_the_variant_option():
    # the default is the chapter's: same keys (the published weights load strictly), same outputs
    torch.manual_seed(0)
    default = ch.Generator(3, num_features=8, num_residuals=2)
    explicit = ch.Generator(3, num_features=8, num_residuals=2, variant="chapter")
    assert list(explicit.state_dict()) == list(default.state_dict())
    assert not any(key.startswith(ch.VARIANT_PREFIX) for key in default.state_dict())
    explicit.load_state_dict(default.state_dict(), strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(default(x), explicit(x))


@pytest.mark.parametrize("variant", [v for v in ch.GENERATOR_VARIANTS if v != "chapter"])
def test_a_variant_never_loads_strictly_into_another_variant(variant):
    saved = ch.Generator(3, num_features=8, num_residuals=1, variant=variant).state_dict()
    assert ch.generator_variant(saved) == variant
    with pytest.raises(RuntimeError, match="Unexpected key"):
        ch.Generator(3, num_features=8, num_residuals=1).load_state_dict(saved, strict=True)
    for other in set(ch.GENERATOR_VARIANTS) - {variant, "chapter"}:
        with pytest.raises(RuntimeError, match="Unexpected key"):
            ch.Generator(3, 8, 1, variant=other).load_state_dict(saved, strict=True)


@pytest.mark.parametrize("variant", [v for v in ch.GENERATOR_VARIANTS if v != "chapter"])
def test_the_chapters_weights_never_load_strictly_into_a_variant(variant):
    chapter = ch.Generator(3, num_features=8, num_residuals=1).state_dict()
    with pytest.raises(RuntimeError, match="Missing key"):
        ch.Generator(3, 8, 1, variant=variant).load_state_dict(chapter, strict=True)


@pytest.mark.parametrize("variant, added", [("no_first_norm", set()), ("skip", set()),
                                            ("mask", {"mask.weight", "mask.bias", "mask_offset"})])
def test_a_variant_adds_only_its_own_weights_to_the_chapters(variant, added):
    saved = ch.Generator(3, num_features=8, num_residuals=1, variant=variant).state_dict()
    chapter_keys = set(ch.Generator(3, 8, 1).state_dict())
    assert set(saved) - {ch.VARIANT_PREFIX + variant} == chapter_keys | added


def test_resize_conv_variants_upsample_without_transposed_convolutions():
    for variant in ("resize_conv", "mask_resize_conv"):
        gen = ch.Generator(3, num_features=8, num_residuals=1, variant=variant)
        assert not any(isinstance(m, nn.ConvTranspose2d) for m in gen.modules())
        assert sum(isinstance(m, nn.Upsample) for m in gen.modules()) == 2
        assert gen(torch.zeros(1, 3, 20, 20)).shape == (1, 3, 20, 20)
    assert any(isinstance(m, nn.ConvTranspose2d) for m in ch.Generator(3, 8, 1, variant="mask").modules())


@pytest.mark.parametrize("variant, content_variant", [("mask", "no_first_norm"),
                                                      ("mask_resize_conv", "resize_conv")])
def test_a_mask_variant_keeps_the_input_where_its_mask_is_0_and_takes_the_content_where_1(
        variant, content_variant):
    torch.manual_seed(0)
    gen = ch.weights_init(ch.Generator(3, num_features=8, num_residuals=1, variant=variant)).eval()
    # the same network without its mask: what the masked generator draws (its "content")
    content_gen = ch.Generator(3, num_features=8, num_residuals=1, variant=content_variant).eval()
    state = {k: v for k, v in gen.state_dict().items() if not k.startswith(("mask", ch.VARIANT_PREFIX))}
    content_gen.load_state_dict({**state, ch.VARIANT_PREFIX + content_variant: torch.tensor(1)}, strict=True)
    # force the mask's logits to -200 on the left half and +200 on the right: m = 0 and 1 exactly
    logits = torch.full((2, 1, 16, 16), 200.0)
    logits[..., :8] = -200.0
    gen.mask.register_forward_hook(lambda module, args, out: logits)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        out, mask = gen(x, return_mask=True)
        content = content_gen(x)
    assert torch.equal(mask[..., :8], torch.zeros_like(mask[..., :8]))
    assert torch.equal(mask[..., 8:], torch.ones_like(mask[..., 8:]))
    assert torch.equal(out[..., :8], x[..., :8])  # the input, pixel for pixel
    assert torch.equal(out[..., 8:], content[..., 8:])
    assert not torch.equal(content[..., :8], x[..., :8])  # so the left half did change something
    with torch.no_grad():
        assert torch.equal(gen(x), out)  # return_mask changes only what is returned


def test_a_mask_starts_at_mask_start_whatever_weights_init_does_and_keeps_it_when_saved():
    gen = ch.weights_init(ch.Generator(3, 8, 1, variant="mask", mask_start=0.9))
    nn.init.zeros_(gen.mask.weight)  # no signal from the features: the mask is its start everywhere
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert gen(x, return_mask=True)[1].flatten().tolist() == pytest.approx([0.9] * 256)
        default = ch.Generator(3, 8, 1, variant="mask")
        default.load_state_dict(gen.state_dict(), strict=True)  # the start travels with the weights
        assert torch.equal(default(x), gen(x))
    assert torch.sigmoid(ch.Generator(3, 8, 1, variant="mask").mask_offset) == pytest.approx(ch.MASK_START)
    with pytest.raises(ValueError, match="between 0 and 1"):
        ch.Generator(3, 8, 1, variant="mask", mask_start=1.0)
    with pytest.raises(ValueError, match="has none"):
        ch.Generator(3, 8, 1, variant="resize_conv", mask_start=0.5)


def test_generators_without_a_mask_return_none_for_it():
    x = torch.rand(1, 3, 16, 16)
    for variant in ("chapter", "no_first_norm", "resize_conv"):
        gen = ch.Generator(3, 8, 1, variant=variant).eval()
        with torch.no_grad():
            out, mask = gen(x, return_mask=True)
            assert mask is None and torch.equal(out, gen(x))
    assert [v for v in ch.GENERATOR_VARIANTS if ch.variant_has_mask(v)] == ["mask", "mask_resize_conv"]


def test_mask_penalty_is_the_weighted_mean_plus_total_variation():
    flat = torch.full((1, 1, 4, 4), 0.25)
    assert ch.mask_penalty(flat, 2.0, 5.0).item() == pytest.approx(0.5)  # no variation
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., 1::2] = 1.0  # columns 0 1 0 1: every horizontal neighbour differs
    assert ch.mask_penalty(stripes, 0.0, 1.0).item() == pytest.approx(1.0)
    assert ch.mask_penalty(stripes, 1.0, 0.0).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="predicts a mask"):
        ch.mask_penalty(None, 1.0, 0.0)


def test_train_step_penalises_the_masks_only_when_asked():
    torch.manual_seed(0)
    nets = [ch.Discriminator(3, (8, 16, 32, 64)), ch.Discriminator(3, (8, 16, 32, 64)),
            ch.Generator(3, 8, 1, variant="mask", mask_start=0.5), ch.Generator(3, 8, 1, variant="mask",
                                                                               mask_start=0.5)]
    for net in nets:
        ch.weights_init(net)
    start = [{k: v.clone() for k, v in net.state_dict().items()} for net in nets]
    A, B = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    losses = []
    for lambda_mask in (0.0, 100.0):
        for net, state in zip(nets, start, strict=True):
            net.load_state_dict(state)
        opt_disc = torch.optim.Adam([p for d in nets[:2] for p in d.parameters()], lr=1e-4)
        opt_gen = torch.optim.Adam([p for g in nets[2:] for p in g.parameters()], lr=1e-4)
        scalers = ch.make_grad_scaler("cpu", None), ch.make_grad_scaler("cpu", None)
        torch.manual_seed(1)
        out = ch.train_step(A, B, *nets, opt_disc, opt_gen, nn.L1Loss(), nn.MSELoss(), *scalers,
                            lambda_mask=lambda_mask)
        losses.append(out["G_loss"].item())
    # the masks start near 0.5: 100 x (mean of mask_A + mean of mask_B) is about 100 more
    assert 80 < losses[1] - losses[0] < 120
    chapter = [ch.Discriminator(3, (8, 16, 32, 64)), ch.Discriminator(3, (8, 16, 32, 64)),
               ch.Generator(3, 8, 1), ch.Generator(3, 8, 1)]
    with pytest.raises(ValueError, match="predicts a mask"):
        ch.train_step(A, B, *chapter, opt_disc, opt_gen, nn.L1Loss(), nn.MSELoss(), *scalers,
                      lambda_mask_tv=1.0)


def test_an_unknown_variant_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="no_first_norm"):
        ch.Generator(3, variant="sees_colour")


def test_list_images_given_a_picture_or_a_looping_link_says_what_it_is(tmp_path):
    from utils.ch06util import list_images

    picture = tmp_path / "000001.jpg"
    picture.write_bytes(b"\xff\xd8\xff")
    with pytest.raises(NotADirectoryError, match=r"000001.jpg is a file, not a folder of images"):
        list_images(picture)
    try:
        os.symlink("loop", tmp_path / "loop")
    except (OSError, NotImplementedError):
        pytest.skip("no symbolic links here")
    with pytest.raises(FileNotFoundError, match="symbolic link that leads nowhere"):
        list_images(tmp_path / "loop")
