"""The fast GPU path's switch, its eager fallback, and the mixed precision each GPU gets.

No GPU here (or in CI): the CUDA facts (capability, bf16, Triton) are monkeypatched, and the
compiled step runs with dynamo's "eager" backend on tiny networks, which traces the networks
as torch.compile does but generates no code, so nothing here compiles the full model. The
speed itself is measured by benchmarks/cuda_checks.sh, never asserted.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tests.conftest import write_images
from utils import ch06util as ch
from utils import fast_gpu, speed
from utils import train as tr

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

GiB = 2**30


# ------------------------------------------------------------------ mixed precision per GPU
@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA GPU of a chosen compute capability, as far as the precision choice can tell."""
    def use(capability: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.version, "hip", None)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        # torch says True on a T4 too: bfloat16 *works* there, emulated
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
        monkeypatch.setattr(torch.cuda.amp.common, "amp_definitely_not_available", lambda: False)
    return use


def test_a_t4_trains_in_float16_with_an_enabled_grad_scaler(fake_gpu):
    fake_gpu((7, 5))  # T4: fp16 tensor cores, no bf16 hardware
    assert ch.default_autocast_dtype("cuda") == torch.float16
    assert ch.make_grad_scaler("cuda").is_enabled()
    assert not ch.cuda_has_native_bf16("cuda")


@pytest.mark.parametrize("capability", [(8, 0), (8, 6), (9, 0)], ids=["A100", "RTX30", "H100"])
def test_ampere_and_newer_train_in_bfloat16_without_a_scaler(fake_gpu, capability):
    fake_gpu(capability)
    assert ch.default_autocast_dtype("cuda") == torch.bfloat16
    assert not ch.make_grad_scaler("cuda").is_enabled()


def test_a_v100_also_gets_float16(fake_gpu):
    fake_gpu((7, 0))
    assert ch.default_autocast_dtype("cuda") == torch.float16


# ------------------------------------------------------------------ batch size and lr
def test_picked_batch_keeps_the_scaled_lr_at_or_below_the_papers():
    # an H200-sized GPU: memory allows far more; the chapter's lr 1e-5 allows 20 -> 16
    assert fast_gpu.pick_batch_size(1e-5, 141 * GiB, 1 * GiB, GiB // 2) == (16, "learning rate")
    # the paper's 2e-4 already is the limit: batch 1
    assert fast_gpu.pick_batch_size(2e-4, 141 * GiB, 1 * GiB, GiB // 2) == (1, "learning rate")
    # a T4-sized GPU (16 GB): 0.6 x 16 - 1 = 8.6 GiB at 1 GiB per pair -> 8
    assert fast_gpu.pick_batch_size(1e-5, 16 * GiB, 1 * GiB, 1 * GiB) == (8, "memory")
    assert fast_gpu.pick_batch_size(1e-7, 1000 * GiB, 0, 1)[0] == fast_gpu.MAX_BATCH
    assert fast_gpu.pick_batch_size(1e-5, 2 * GiB, 2 * GiB, GiB) == (1, "memory")  # never below 1


def _config(tmp_path, **overrides) -> tr.TrainConfig:
    return tr.TrainConfig(domain_a=tmp_path, domain_b=tmp_path, out=tmp_path, **overrides)


def test_settle_picks_the_batch_and_prints_it_with_the_lr(tmp_path):
    lines: list[str] = []
    memory = lambda config, device: (16 * GiB, 1 * GiB, 1 * GiB)  # noqa: E731 - a T4-like probe
    config = fast_gpu.settle(_config(tmp_path, fast_gpu=True), "cuda", log=lines.append, memory=memory)
    assert (config.batch_size, config.lr) == (8, pytest.approx(8e-5))
    assert len(lines) == 1 and "batch 8" in lines[0] and "learning rate 8e-05" in lines[0]
    # budgets in iterations keep their number of pairs
    budget = _config(tmp_path, fast_gpu=True, iterations=48_472, decay_from=40_000, checkpoint_every=2000)
    config = fast_gpu.settle(budget, "cuda", log=lines.append, memory=memory)
    assert (config.iterations, config.decay_from, config.checkpoint_every) == (6059, 5000, 250)
    assert "the same 48,472 pairs" in lines[-1]


def test_settle_keeps_a_batch_size_that_was_given(tmp_path):
    lines: list[str] = []
    given = _config(tmp_path, fast_gpu=True, batch_size=4, lr=3e-5)
    assert fast_gpu.settle(given, "cuda", log=lines.append, memory=None) == given
    assert "batch 4 as given" in lines[0]


def test_settle_is_a_noop_with_a_note_on_the_cpu_and_silent_when_off(tmp_path):
    lines: list[str] = []
    on = _config(tmp_path, fast_gpu=True)
    assert fast_gpu.settle(on, "cpu", log=lines.append, memory=None) == on
    assert len(lines) == 1 and "off on cpu" in lines[0]
    off = _config(tmp_path)
    assert fast_gpu.settle(off, "cuda", log=lines.append, memory=None) == off and len(lines) == 1


def test_the_cli_flag_sets_the_config_field(tmp_path):
    args = tr.build_parser().parse_args(["--domain-a", "a", "--domain-b", "b", "--out", "o", "--fast-gpu"])
    assert tr.config_from_args(args).fast_gpu is True
    args = tr.build_parser().parse_args(["--domain-a", "a", "--domain-b", "b", "--out", "o"])
    assert tr.config_from_args(args).fast_gpu is False


# ------------------------------------------------------------------ the compiled step
def _tiny_nets() -> list[nn.Module]:
    torch.manual_seed(0)
    nets = [ch.Discriminator(3, features=(8, 16, 32, 64)) for _ in range(2)]
    nets += [ch.Generator(3, num_features=8, num_residuals=1) for _ in range(2)]
    return [ch.weights_init(net) for net in nets]


def _run(step, iterations: int = 5) -> list[nn.Module]:
    """`iterations` training steps of `step` (train_step or a FastStep) on copies of the nets."""
    nets = [copy.deepcopy(net) for net in _tiny_nets()]
    opt_disc, opt_gen = speed.make_optimizers(*nets, lr=2e-4, device="cpu")
    scalers = ch.make_grad_scaler("cpu", None), ch.make_grad_scaler("cpu", None)
    gen = torch.Generator().manual_seed(1)
    pools = {"pool_A": tr.ImagePool(2, seed=1), "pool_B": tr.ImagePool(2, seed=2)}  # state to undo too
    for _ in range(iterations):
        A, B = (torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))
        step(A, B, *nets, opt_disc, opt_gen, nn.L1Loss(), nn.MSELoss(), *scalers,
             lambda_identity=1.0, **pools)
    return nets


def _assert_same_weights(nets, reference):
    for net, ref in zip(nets, reference, strict=True):
        for (name, a), b in zip(net.state_dict().items(), ref.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def eager_reference() -> list[nn.Module]:
    # a module fixture is made before the function-scoped one_thread applies: compute the
    # reference on one thread too, since a sum split over two threads rounds differently
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(ch.train_step)
    finally:
        torch.set_num_threads(before)


def test_compiled_step_trains_the_same_weights_and_reports_its_times(eager_reference):
    lines: list[str] = []
    step = fast_gpu.FastStep(ch.train_step, "cpu", backend="eager", eager_steps=1, compile_steps=2,
                             timed_steps=2, channels_last=False, log=lines.append)
    nets = _run(step)
    # all five iterations ran (1 eager, 2 compiling, 2 timed compiled), then one report line;
    # whether that line keeps the compiled networks depends on timings, which are not tested
    assert step.times["compile"] > 0 and step.times["compiled"] > 0 and step.times["eager"] > 0
    assert "compiling the four networks" in lines[0] and "backend eager" in lines[0]
    assert "compiling took" in lines[1] or "not faster" in lines[1]
    assert step.state == "compiled" if "compiling took" in lines[1] else step.state == "failed"
    _assert_same_weights(nets, eager_reference)


def test_torch_compile_raising_falls_back_to_eager_with_one_line(monkeypatch, eager_reference):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nsecond line of a long trace")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(fast_gpu, "compiler_missing", lambda device: None)
    lines: list[str] = []
    step = fast_gpu.FastStep(ch.train_step, "cpu", eager_steps=1, channels_last=False, log=lines.append)
    nets = _run(step)
    assert step.state == "failed" and "torch.compile failed" in step.reason
    fell_back = [line for line in lines if "continues eagerly" in line]
    assert len(fell_back) == 1 and "second line" not in fell_back[0]
    _assert_same_weights(nets, eager_reference)


class _FailsOnSecondCall(nn.Module):
    """A 'compiled' network whose code breaks the second time it runs, as a lazily compiled
    backward or a CUDA graph recording can: for a generator, after the discriminators' update."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("inductor: lowering failed")
        return self.net(x)


def test_a_compile_failure_mid_iteration_undoes_the_half_done_iteration(monkeypatch, eager_reference):
    monkeypatch.setattr(torch, "compile", lambda net, **kwargs:
                        _FailsOnSecondCall(net) if isinstance(net, ch.Generator) else net)
    monkeypatch.setattr(fast_gpu, "compiler_missing", lambda device: None)
    lines: list[str] = []
    step = fast_gpu.FastStep(ch.train_step, "cpu", eager_steps=1, channels_last=False, log=lines.append)
    nets = _run(step)
    assert step.state == "failed" and "lowering failed" in step.reason
    # the discriminators had stepped on that batch before the generator failed: undone, redone once
    _assert_same_weights(nets, eager_reference)


def test_no_compiler_means_eager_with_a_note(monkeypatch):
    import torch.utils._triton as triton

    monkeypatch.setattr(triton, "has_triton", lambda: False)
    assert "Triton" in fast_gpu.compiler_missing("cuda")
    assert "only for CUDA" in fast_gpu.compiler_missing("cpu")
    lines: list[str] = []
    step = fast_gpu.FastStep(ch.train_step, "cuda", log=lines.append)  # builds nothing on the GPU
    assert step.state == "failed" and len(lines) == 1 and "Triton" in lines[0]


def test_a_short_run_is_not_compiled():
    lines: list[str] = []
    step = fast_gpu.FastStep(ch.train_step, "cuda", remaining=50, log=lines.append)
    assert step.state == "failed" and "too few" in lines[0]


def test_a_compiled_step_that_is_not_faster_is_dropped():
    lines: list[str] = []
    step = fast_gpu.FastStep(ch.train_step, "cpu", backend="eager", channels_last=False, log=lines.append)
    step.compiled, step.state = {}, "compiled"
    step.times.update(eager=0.010, compile=30.0, compiled=0.012)
    step._report([], [])
    assert step.state == "failed" and "not faster" in lines[-1]
    step = fast_gpu.FastStep(ch.train_step, "cpu", backend="eager", channels_last=False, log=lines.append)
    step.times.update(eager=0.080, compile=60.0, compiled=0.020)
    step._report([], [])
    assert "4.00x" in lines[-1] and "999 iterations" in lines[-1]  # (60 - 3 x 0.02) / 0.06


def test_optimizer_state_follows_its_parameter_into_channels_last():
    conv = nn.Conv2d(3, 4, 3)
    opt = torch.optim.Adam(conv.parameters())
    conv(torch.rand(1, 3, 8, 8)).sum().backward()
    opt.step()
    before = {k: v.clone() for k, v in opt.state[conv.weight].items()}
    conv.to(memory_format=torch.channels_last)
    speed.match_optimizer_layout(opt)
    for key, value in opt.state[conv.weight].items():
        if value.dim() == 4:
            assert value.stride() == conv.weight.stride()
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


# ------------------------------------------------------------------ the training command
def test_training_with_the_switch_on_a_cpu_notes_it_and_trains_as_without(tmp_path, capsys):
    a, b = tmp_path / "A", tmp_path / "B"
    write_images(a, 3, size=(36, 40), seed=1)
    write_images(b, 3, size=(36, 40), seed=2)
    settings = dict(domain_a=a, domain_b=b, image_size=32, num_features=8, num_residuals=1,
                    sample_every=0, iterations=2, device="cpu")
    plain = tr.train(tr.TrainConfig(out=tmp_path / "plain", **settings), progress=False)
    fast = tr.train(tr.TrainConfig(out=tmp_path / "fast", fast_gpu=True, **settings), progress=False)
    assert "fast GPU path: off on cpu" in capsys.readouterr().out
    _assert_same_weights([fast.gen_A, fast.disc_B], [plain.gen_A, plain.disc_B])


def test_resuming_a_channels_last_checkpoint_trains_as_resuming_a_plain_one(tmp_path):
    """A --fast-gpu run saves channels-last weights and Adam state; a plain resume (another
    session, a CPU) must pair each average with its parameter, not by memory order."""
    a, b = tmp_path / "A", tmp_path / "B"
    write_images(a, 3, size=(36, 40), seed=1)
    write_images(b, 3, size=(36, 40), seed=2)
    settings = dict(domain_a=a, domain_b=b, image_size=32, num_features=8, num_residuals=1,
                    sample_every=0, checkpoint_every=100, device="cpu", lr=1e-2)
    results = {}
    for name in ("plain", "channels_last"):
        out = tmp_path / name
        tr.train(tr.TrainConfig(out=out, iterations=2, **settings), progress=False)
        if name == "channels_last":
            state = torch.load(out / tr.CHECKPOINT, weights_only=True)
            for value in _tensors(state):
                if value.dim() == 4:
                    value.data = value.contiguous(memory_format=torch.channels_last)
            torch.save(state, out / tr.CHECKPOINT)
        results[name] = tr.train(tr.TrainConfig(out=out, iterations=4, resume=True, **settings),
                                 progress=False)
    nets = ("gen_A", "gen_B", "disc_A", "disc_B")
    _assert_same_weights([getattr(results["channels_last"], n) for n in nets],
                         [getattr(results["plain"], n) for n in nets])


def _tensors(obj):
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def test_memory_probe_runs_two_training_steps_and_leaves_the_rng_alone(monkeypatch, tmp_path):
    """measure_memory on the CPU with the CUDA allocator's counters faked: the code a GPU runs."""
    peaks = iter([1000 + 300, 1000 + 2 * 300])  # bytes at batch 1, then 2
    for name in ("synchronize", "reset_peak_memory_stats", "empty_cache"):
        monkeypatch.setattr(torch.cuda, name, lambda *args, **kwargs: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: next(peaks))
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device=None: type("Props", (), {"total_memory": 16 * GiB}))
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: torch.zeros(1, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device=None: None)
    steps = []
    monkeypatch.setattr(fast_gpu, "train_step", lambda A, *args, **kwargs: steps.append(tuple(A.shape)))
    config = _config(tmp_path, fast_gpu=True, image_size=32, num_features=8, num_residuals=1)
    before = torch.get_rng_state()
    assert fast_gpu.measure_memory(config, torch.device("cpu")) == (16 * GiB, 1000, 300)
    assert steps == [(1, 3, 32, 32), (2, 3, 32, 32)]
    assert torch.equal(torch.get_rng_state(), before)  # the run's weights do not depend on the probe
