"""The CUDA paths: mixed precision, the training command, channels-last, the demo, --fast-gpu.

Skipped where there is no CUDA GPU (CI has none); run them on a GPU machine with
``pytest tests/test_cuda.py`` (benchmarks/cuda_checks.sh does, beside the speed figures).
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from tests.conftest import write_images
from utils import ch06util as ch
from utils import fast_gpu, speed
from utils import train as tr
from utils.checkpoints import load_generator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")


@pytest.fixture
def strict_fp32():
    """Plain float32 convolutions and products (no TF32), so CUDA and CPU can be compared."""
    with speed.no_tf32():
        yield


def tiny_nets() -> list[nn.Module]:
    torch.manual_seed(0)
    nets = [ch.Discriminator(3, features=(8, 16, 32, 64)) for _ in range(2)]
    nets += [ch.Generator(3, num_features=8, num_residuals=1) for _ in range(2)]
    return [ch.weights_init(net) for net in nets]


def batches(count: int = 3, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.rand(2, 3, size, size, generator=gen) * 2 - 1,
             torch.rand(2, 3, size, size, generator=gen) * 2 - 1) for _ in range(count)]


def run_steps(nets: list[nn.Module], device: torch.device, dtype: torch.dtype | None,
              lr: float = 2e-4) -> list[float]:
    """`train_step` on copies of `nets` as utils.train runs it on `device`; the losses."""
    nets = [speed.to_fast_layout(copy.deepcopy(net), device) for net in nets]
    opt_disc, opt_gen = speed.make_optimizers(*nets, lr=lr, device=device)
    d_scaler, g_scaler = ch.make_grad_scaler(device, dtype), ch.make_grad_scaler(device, dtype)
    losses = []
    for A, B in batches():
        out = ch.train_step(A.to(device), B.to(device), *nets, opt_disc, opt_gen, nn.L1Loss(), nn.MSELoss(),
                            d_scaler, g_scaler, autocast_dtype=dtype, lambda_identity=5.0)
        losses += [float(out["D_loss"]), float(out["G_loss"])]
    return losses


def test_default_mixed_precision_on_this_gpu():
    dtype = ch.default_autocast_dtype(CUDA)
    # bf16 where the hardware has it (compute capability 8+); a T4 (7.5) emulates it: fp16 there
    native = torch.cuda.get_device_capability(CUDA)[0] >= 8
    assert dtype == (torch.bfloat16 if native else torch.float16)
    # float16 needs the scaler against underflow; bfloat16 has float32's range and does not
    assert ch.make_grad_scaler(CUDA, dtype).is_enabled() == (dtype == torch.float16)


def test_cuda_float32_step_matches_the_cpu(strict_fp32):
    nets = tiny_nets()
    cpu = run_steps(nets, torch.device("cpu"), None)
    gpu = run_steps(nets, CUDA, None)
    assert gpu == pytest.approx(cpu, rel=1e-4)


def test_mixed_precision_step_tracks_float32(strict_fp32):
    nets = tiny_nets()
    exact = run_steps(nets, CUDA, None)
    mixed = run_steps(nets, CUDA, ch.default_autocast_dtype(CUDA))
    # bfloat16 keeps 8 bits of mantissa: the losses agree to a few percent, not to rounding
    assert mixed == pytest.approx(exact, rel=0.05)
    assert all(torch.isfinite(torch.tensor(mixed)))


def test_channels_last_is_offered_only_where_its_gradients_are_right(strict_fp32):
    gen = tiny_nets()[2].to(CUDA)
    x = torch.rand(2, 3, 32, 32, device=CUDA) * 2 - 1
    gen(x).square().mean().backward()
    plain = [p.grad.clone() for p in gen.parameters()]
    if not speed.channels_last_is_exact(CUDA):
        with pytest.raises(ValueError, match="channels-last"):
            speed.to_fast_layout(gen, CUDA, channels_last=True)
        return
    fast = speed.to_fast_layout(copy.deepcopy(gen), CUDA, channels_last=True)
    fast.zero_grad()
    fast(speed.to_fast_layout(x, CUDA, channels_last=True)).square().mean().backward()
    for ours, ref in zip((p.grad for p in fast.parameters()), plain, strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-3, atol=1e-6)


def test_training_command_on_cuda_with_workers_resumes_and_saves(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    write_images(a, 6, size=(36, 40), seed=1)
    write_images(b, 6, size=(36, 40), seed=2)
    settings = dict(domain_a=a, domain_b=b, out=tmp_path / "run", image_size=32, num_features=8,
                    num_residuals=1, batch_size=2, lr=2e-4, sample_every=2, checkpoint_every=2,
                    log_every=1, device="cuda", workers=2)
    first = tr.train(tr.TrainConfig(**settings, iterations=2), progress=False)
    second = tr.train(tr.TrainConfig(**settings, iterations=4, resume=True), progress=False)
    assert first.iteration == 2 and second.iteration == 4
    assert list(second.history["iteration"]) == [1, 2, 3, 4]  # no rows repeated across the resume
    assert second.history[["D_loss", "G_loss"]].notna().all().all()
    assert next(second.gen_A.parameters()).device.type == "cuda"
    gen = load_generator(second.paths["gen_black"])  # a plain CPU load of what CUDA saved
    assert next(gen.parameters()).device.type == "cpu"
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        saved, trained = gen(x), second.gen_A.float().cpu()(x)
    torch.testing.assert_close(saved, trained, rtol=1e-4, atol=1e-5)


def test_fast_demo_runs_on_cuda(tmp_path, monkeypatch):
    from utils import demo

    monkeypatch.setenv("CH06_FILES", str(tmp_path))
    metrics = demo.run_demo(device="cuda", fast=True, progress=False)
    saved = json.loads((tmp_path / "demo" / "metrics.json").read_text(encoding="utf-8"))
    assert "cuda" in saved["device"] and saved["iterations"] == demo.FAST.iterations
    assert 0 <= metrics["black_to_blond"]["hair_accuracy"] <= 1


def test_fast_step_compiles_on_this_gpu_and_tracks_the_eager_losses(strict_fp32):
    """The --fast-gpu step for real: torch.compile with CUDA graphs on tiny networks."""
    nets = tiny_nets()
    exact = run_steps(nets, CUDA, None)  # 3 eager iterations
    lines: list[str] = []
    step = fast_gpu.FastStep(ch.train_step, CUDA, eager_steps=1, compile_steps=1, timed_steps=1,
                             log=lines.append)
    fast_nets = [speed.to_fast_layout(copy.deepcopy(net), CUDA) for net in nets]
    opt_disc, opt_gen = speed.make_optimizers(*fast_nets, lr=2e-4, device=CUDA)
    d_scaler, g_scaler = ch.make_grad_scaler(CUDA, None), ch.make_grad_scaler(CUDA, None)
    losses = []
    for A, B in batches():
        out = step(A.to(CUDA), B.to(CUDA), *fast_nets, opt_disc, opt_gen, nn.L1Loss(), nn.MSELoss(),
                   d_scaler, g_scaler, autocast_dtype=None, lambda_identity=5.0)
        losses += [float(out["D_loss"]), float(out["G_loss"])]
    print("\n".join(lines))  # compile time and speed-up, for the log of benchmarks/cuda_checks.sh
    assert "failed" not in (step.reason or ""), step.reason  # it compiled (slower is allowed)
    assert step.times.get("compiled", 0) > 0
    assert losses == pytest.approx(exact, rel=1e-3)


def test_training_command_with_fast_gpu_probes_memory_and_keeps_a_short_run_eager(tmp_path, capsys):
    a, b = tmp_path / "A", tmp_path / "B"
    write_images(a, 6, size=(36, 40), seed=1)
    write_images(b, 6, size=(36, 40), seed=2)
    result = tr.train(tr.TrainConfig(domain_a=a, domain_b=b, out=tmp_path / "run", image_size=32,
                                     num_features=8, num_residuals=1, lr=2e-4, iterations=3,
                                     sample_every=0, device="cuda", fast_gpu=True), progress=False)
    out = capsys.readouterr().out
    assert "fast GPU path: batch 1 (bounded by learning rate" in out  # 2e-4 is the paper's limit
    assert "too few to win back the compile time" in out
    assert result.iteration == 3
