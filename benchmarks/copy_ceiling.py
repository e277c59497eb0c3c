"""How fast can the chapter's generator learn to *copy* a face? An upper bound for the demo.

Everything outside the hair must come out of a CycleGAN generator unchanged, and the demo
scores exactly that (PSNR outside the hair). This script trains one `Generator` at the
demo's size to reproduce its input (L1, what the identity loss alone asks for; no
discriminator, no hair change) and prints held-out PSNR every `--every` steps, twice:

* ``psnr``: the output against the input, over the whole image;
* ``psnr_mean_fixed``: the same after shifting each output so that its mean colour equals
  the input's.

The gap between the two is the error in each image's overall colour. The generator cannot
see that colour at all: its first layer is a convolution followed by an instance norm,
which subtracts each feature map's mean, so adding a constant to any colour channel of
the input changes nothing downstream (`G(x + c) == G(x)`; the script prints the measured
difference). The overall colour must be guessed from the picture's content, and learning
that guess takes most of the steps.

    python benchmarks/copy_ceiling.py                          # the demo's size, on this machine
    python benchmarks/copy_ceiling.py --steps 20000 --device cuda --fp32
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import add_machine_options, apply_machine_options  # noqa: E402
from utils import demo  # noqa: E402
from utils.ch06util import Generator, list_images, weights_init  # noqa: E402
from utils.evaluate import colour_offset_effect, psnr, to_unit  # noqa: E402
from utils.inference import load_images  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=demo.DEMO.image_size)
    parser.add_argument("--features", type=int, default=demo.DEMO.num_features)
    parser.add_argument("--residuals", type=int, default=demo.DEMO.num_residuals)
    parser.add_argument("--batch", type=int, default=demo.DEMO.batch_size)
    parser.add_argument("--lr", type=float, default=demo.DEMO.lr)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--minutes", type=float, help="stop after this many minutes (default: none)")
    add_machine_options(parser)
    args = parser.parse_args(argv)
    device = apply_machine_options(args)
    print(f"size {args.size}, generator {args.features} wide with {args.residuals} residual blocks, "
          f"batch {args.batch}, lr {args.lr:g}")

    data = demo.demo_data(demo.DEMO)
    train = load_images(list_images(data.domain_A) + list_images(data.domain_B), args.size).to(device)
    held_out = load_images(list_images(data.test_A) + list_images(data.test_B), args.size).to(device)
    torch.manual_seed(0)
    gen = weights_init(Generator(3, args.features, args.residuals)).to(device)
    opt = torch.optim.Adam(gen.parameters(), lr=args.lr, betas=demo.DEMO.betas)
    print(f"{len(train)} training faces, {len(held_out)} held out; "
          f"output change for a colour offset of the input: {colour_offset_effect(gen, held_out[:8]):.2e}")

    started = time.monotonic()
    for step in range(1, args.steps + 1):
        batch = train[torch.randint(len(train), (args.batch,), device=device)]
        loss = (gen(batch) - batch).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out_of_time = args.minutes is not None and time.monotonic() - started > 60 * args.minutes
        if step % args.every == 0 or step == args.steps or out_of_time:
            with torch.no_grad():
                gen.eval()
                out, src = to_unit(gen(held_out)), to_unit(held_out)
                gen.train()
                fixed = (out - out.mean((2, 3), keepdim=True) + src.mean((2, 3), keepdim=True)).clamp(0, 1)
                print(f"step {step:6d}  minutes {(time.monotonic() - started) / 60:5.2f}  "
                      f"psnr {float(psnr(out, src).mean()):5.2f}  "
                      f"psnr_mean_fixed {float(psnr(fixed, src).mean()):5.2f}", flush=True)
        if out_of_time:
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
