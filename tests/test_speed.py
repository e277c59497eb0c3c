"""The fast training path computes what the chapter's loop computes (up to float rounding).

Tiny networks and 32 px images keep this fast; the speed itself is measured by
benchmarks/speed.py, never asserted here.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from benchmarks.chapter_loop import chapter_optimizers, chapter_scaler, chapter_step
from utils import ch06util as ch
from utils import speed

LR, ITERATIONS = 1e-5, 3  # the chapter's learning rate; iterations compared


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _tiny_nets(seed: int = 0) -> list[nn.Module]:
    torch.manual_seed(seed)
    nets = [ch.Discriminator(3, features=(8, 16, 32, 64)) for _ in range(2)]
    nets += [ch.Generator(3, num_features=8, num_residuals=1) for _ in range(2)]
    return [ch.weights_init(net) for net in nets]


def _batches(count: int = ITERATIONS, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.rand(1, 3, size, size, generator=gen) * 2 - 1,
             torch.rand(1, 3, size, size, generator=gen) * 2 - 1) for _ in range(count)]


def _feeds_instance_norm(net: nn.Module) -> set[str]:
    """Names of the conv biases followed by an InstanceNorm: their true gradient is zero.

    The norm subtracts each channel's mean, so a per-channel bias cancels. Their computed
    gradient is rounding noise (~1e-9), which Adam divides by its own size and turns into
    steps of about +-lr: there, and only there, a rounding difference becomes a visible one.
    """
    names = set()
    for name, module in net.named_modules():
        if isinstance(module, nn.Sequential):
            for k in range(len(module) - 1):
                if isinstance(module[k], (nn.Conv2d, nn.ConvTranspose2d)) and \
                        isinstance(module[k + 1], nn.InstanceNorm2d):
                    names.add(f"{name}.{k}.bias".lstrip("."))
    return names


def _flat(nets: list[nn.Module]) -> dict[str, torch.Tensor]:
    """All parameters as two flat tensors: norm-fed biases, and everything else."""
    parts: dict[str, list[torch.Tensor]] = {"norm_fed_biases": [], "others": []}
    for net in nets:
        cancelled = _feeds_instance_norm(net)
        for name, p in net.named_parameters():
            parts["norm_fed_biases" if name in cancelled else "others"].append(p.detach().flatten())
    return {key: torch.cat(values) for key, values in parts.items()}


def _run_chapter(base, batches):
    nets = [copy.deepcopy(net) for net in base]
    opt_disc, opt_gen = chapter_optimizers(*nets)
    scaler = chapter_scaler("cpu")
    losses = [loss for A, B in batches for loss in
              chapter_step(A, B, *nets, opt_disc, opt_gen, nn.L1Loss(), nn.MSELoss(), scaler, scaler)]
    return _flat(nets), losses


def _run_ours(base, batches, *, fast: bool, **step_options):
    """`train_step` with plain Adam (fast=False) or with every default of utils.speed, in float32."""
    device = torch.device("cpu")
    nets = [copy.deepcopy(net) for net in base]
    if fast:
        speed.tune_backends(device)
        nets = [speed.to_fast_layout(net, device) for net in nets]
        opt_disc, opt_gen = speed.make_optimizers(*nets, device=device)
    else:
        opt_disc, opt_gen = chapter_optimizers(*nets)
    # float32 as the chapter computes on a CPU: this compares the math to rounding; bfloat16's
    # rounding (the default where the CPU computes it) is judged by held-out scores instead
    dtype = None
    scaler = ch.make_grad_scaler(device, dtype)
    losses = []
    for A, B in batches:
        if fast:
            A, B = speed.to_fast_layout(A, device), speed.to_fast_layout(B, device)
        out = ch.train_step(A, B, *nets, opt_disc, opt_gen, nn.L1Loss(), nn.MSELoss(), scaler,
                            scaler, autocast_dtype=dtype, **step_options)
        losses += [out["D_loss"].item(), out["G_loss"].item()]
    return _flat(nets), losses


# Adam's first steps move each weight by about lr = 1e-5 whatever the gradient's size, so
# the test compares to well below that: 1e-8 absolute is a few float32 ulps of a weight
# of ~0.05, what a different summation order in a kernel explains.
ROUNDING = {"rtol": 1e-6, "atol": 1e-8}


def assert_same_training(ours: dict[str, torch.Tensor], chapter: dict[str, torch.Tensor]) -> None:
    torch.testing.assert_close(ours["others"], chapter["others"], **ROUNDING)
    # Norm-fed biases follow rounding noise in both loops (see _feeds_instance_norm): each
    # may differ by at most two Adam steps of ~lr per iteration (opposite signs).
    assert (ours["norm_fed_biases"] - chapter["norm_fed_biases"]).abs().max() <= 2.2 * LR * ITERATIONS


def test_frozen_discriminators_give_the_chapters_weights():
    base, batches = _tiny_nets(), _batches()
    start = _flat(base)
    chapter, chapter_losses = _run_chapter(base, batches)
    ours, our_losses = _run_ours(base, batches, fast=False)
    assert (chapter["others"] - start["others"]).abs().max() > 1e-6  # training moved them
    assert_same_training(ours, chapter)
    assert our_losses == pytest.approx(chapter_losses, rel=1e-6)


def test_norm_fed_biases_get_only_rounding_noise_as_gradient():
    gen = _tiny_nets()[2]
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    gen(x).square().mean().backward()
    cancelled = _feeds_instance_norm(gen)
    assert "initial.0.bias" in cancelled and "last.bias" not in cancelled
    for name, p in gen.named_parameters():
        if name in cancelled:
            assert p.grad.abs().max() < 1e-6 * gen.initial[0].weight.grad.abs().max()


def test_the_comparison_catches_a_change_of_the_chapters_math():
    base, batches = _tiny_nets(), _batches()
    chapter, _ = _run_chapter(base, batches)
    other, _ = _run_ours(base, batches, fast=False, lambda_cycle=5.0)
    with pytest.raises(AssertionError):
        assert_same_training(other, chapter)


def test_fast_default_path_matches_the_chapter_loop_after_three_iterations():
    base, batches = _tiny_nets(), _batches()
    chapter, chapter_losses = _run_chapter(base, batches)
    fast, fast_losses = _run_ours(base, batches, fast=True)
    assert_same_training(fast, chapter)
    assert fast_losses == pytest.approx(chapter_losses, rel=1e-5)


def test_generator_step_leaves_only_the_discriminator_step_gradients():
    base, (batch,) = _tiny_nets(), _batches(1)
    nets = [copy.deepcopy(net) for net in base]
    opt_disc, opt_gen = chapter_optimizers(*nets)
    scaler = chapter_scaler("cpu")
    ch.train_step(*batch, *nets, opt_disc, opt_gen, nn.L1Loss(), nn.MSELoss(), scaler, scaler)
    # The D-step gradients of the same batch, computed by hand on the starting weights.
    disc_A, disc_B, gen_A, gen_B = [copy.deepcopy(net) for net in base]
    A, B = batch
    mse = nn.MSELoss()
    real_A, fake_A = disc_A(A), disc_A(gen_A(B).detach())
    real_B, fake_B = disc_B(B), disc_B(gen_B(A).detach())
    ((mse(real_A, torch.ones_like(real_A)) + mse(fake_A, torch.zeros_like(fake_A))
      + mse(real_B, torch.ones_like(real_B)) + mse(fake_B, torch.zeros_like(fake_B))) / 2).backward()
    for trained, by_hand in zip([*nets[0].parameters(), *nets[1].parameters()],
                                [*disc_A.parameters(), *disc_B.parameters()], strict=True):
        torch.testing.assert_close(trained.grad, by_hand.grad, rtol=1e-5, atol=1e-9)
        assert trained.requires_grad


def test_make_optimizers_groups_like_the_chapter_and_fuses_on_cpu():
    disc_A, disc_B, gen_A, gen_B = _tiny_nets()
    opt_disc, opt_gen = speed.make_optimizers(disc_A, disc_B, gen_A, gen_B)
    assert {id(p) for p in opt_disc.param_groups[0]["params"]} == \
        {id(p) for p in (*disc_A.parameters(), *disc_B.parameters())}
    assert {id(p) for p in opt_gen.param_groups[0]["params"]} == \
        {id(p) for p in (*gen_A.parameters(), *gen_B.parameters())}
    for opt in (opt_disc, opt_gen):
        group = opt.param_groups[0]
        assert group["lr"] == 1e-5 and group["betas"] == (0.5, 0.999)
        assert group["fused"] is True
    plain, _ = speed.make_optimizers(disc_A, disc_B, gen_A, gen_B, fused=False)
    assert not plain.param_groups[0]["fused"]


def test_channels_last_is_refused_exactly_where_it_gets_the_gradients_wrong(monkeypatch):
    torch.manual_seed(0)
    gen = ch.weights_init(ch.Generator(3, num_features=8, num_residuals=1))
    x = torch.rand(1, 3, 32, 32) * 2 - 1

    def first_grad(net, inp, bf16=False):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(inp)
        out.float().square().mean().backward()
        return net.initial[0].weight.grad

    def layouts_agree(bf16):
        plain = first_grad(copy.deepcopy(gen), x, bf16)
        fast = first_grad(copy.deepcopy(gen).to(memory_format=torch.channels_last),
                          x.contiguous(memory_format=torch.channels_last), bf16)
        if bf16:  # bfloat16's rounding in both layouts, far below the defect's error above 1
            return bool((fast - plain).norm() <= 0.05 * plain.norm())
        return torch.allclose(plain, fast, rtol=1e-3, atol=1e-6)

    exact = layouts_agree(bf16=False) and layouts_agree(bf16=True)  # float32, and autocast's bfloat16
    assert speed.channels_last_is_exact("cpu") == exact
    if not exact:
        with pytest.raises(ValueError, match="channels-last"):
            speed.to_fast_layout(x, "cpu", channels_last=True)
    monkeypatch.setattr(speed, "channels_last_is_exact", lambda device: True)
    assert speed.to_fast_layout(x, "cpu", channels_last=True).is_contiguous(
        memory_format=torch.channels_last)


def test_default_layout_on_cpu_is_plain_nchw():
    x = torch.rand(2, 3, 8, 8)
    assert speed.to_fast_layout(x, "cpu").is_contiguous()
    model = speed.to_fast_layout(nn.Conv2d(3, 4, 3), "cpu")
    assert model.weight.is_contiguous()


def test_loader_settings_per_device():
    assert speed.recommended_workers("cpu") == 0
    assert speed.loader_options("cpu") == {"num_workers": 0, "pin_memory": False}
    cuda = speed.loader_options("cuda")
    assert cuda["num_workers"] >= 1 and cuda["pin_memory"] and cuda["persistent_workers"]
    assert speed.loader_options("cuda", num_workers=0) == {"num_workers": 0, "pin_memory": True}


def test_tune_backends_turns_on_cudnn_autotuning_only_for_cuda(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    speed.tune_backends("cpu")
    assert torch.backends.cudnn.benchmark is False
    speed.tune_backends("cuda")  # only sets flags: works without a GPU
    assert torch.backends.cudnn.benchmark is True


def test_compile_models_wraps_without_copying_the_weights():
    gen = nn.Conv2d(3, 3, 1)
    (compiled,) = speed.compile_models(gen, device="cpu")  # compiles lazily: nothing runs here
    assert compiled._orig_mod is gen


def test_scaled_lr_follows_the_linear_rule():
    assert speed.scaled_lr(1) == 1e-5
    assert speed.scaled_lr(8) == pytest.approx(8e-5)
    with pytest.raises(ValueError, match="batch_size"):
        speed.scaled_lr(0)


def test_cpu_has_bf16_reads_the_instructions_not_onednn(monkeypatch):
    import torch.cpu as tcpu

    monkeypatch.setattr(tcpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(tcpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)  # oneDNN would emulate
    assert ch.cpu_has_bf16() is False
    monkeypatch.delenv("CH06_CPU_AMP", raising=False)
    assert ch.default_autocast_dtype("cpu") is None
    monkeypatch.setattr(tcpu, "_is_amx_tile_supported", lambda: True)
    assert ch.cpu_has_bf16() is True
    assert ch.default_autocast_dtype("cpu") == torch.bfloat16


def test_cpu_has_bf16_agrees_with_proc_cpuinfo():
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo (not Linux)")
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("flags")), [])
    if not flags:
        pytest.skip("/proc/cpuinfo lists no flags (not x86)")
    assert ch.cpu_has_bf16() == bool({"avx512_bf16", "amx_tile"} & set(flags))


def test_train_epoch_tunes_the_backends_for_its_device(monkeypatch, domains, tmp_path):
    seen = []
    monkeypatch.setattr(ch, "tune_backends", seen.append)
    nets = _tiny_nets()
    opt_disc, opt_gen = speed.make_optimizers(*nets)
    loader = torch.utils.data.DataLoader(ch.LoadData(*domains, ch.make_transform(32)), batch_size=1)
    scaler = ch.make_grad_scaler("cpu")
    ch.train_epoch(*nets, loader, opt_disc, opt_gen, nn.L1Loss(), nn.MSELoss(), scaler, scaler,
                   "cpu", max_batches=1, progress=False, sample_dir=tmp_path)
    assert seen == [torch.device("cpu")]


def test_no_tf32_turns_tf32_off_inside_and_restores_the_flags_after():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
        with speed.no_tf32():
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, False)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize("cost, chosen", [({2: 1.0, 1: 1.5}, 2),   # idle cores: two threads win
                                          ({2: 5.0, 1: 0.9}, 1)])  # a busy core: one thread wins
def test_pick_cpu_threads_keeps_the_faster_count(monkeypatch, cost, chosen):
    # a fake clock that each step advances by its cost at the current thread count: no timing here
    clock = [0.0]
    monkeypatch.setattr(speed.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    threads_set = []
    monkeypatch.setattr(torch, "set_num_threads", threads_set.append)

    def step():
        clock[0] += cost[threads_set[-1]]

    assert speed.pick_cpu_threads(step) == chosen
    assert threads_set == [2, 1, chosen]  # timed at the default, then at one, then kept the faster


def test_pick_cpu_threads_with_one_core_runs_nothing(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert speed.pick_cpu_threads(lambda: pytest.fail("no step should run")) == 1
