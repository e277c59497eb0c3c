"""Run under `torchrun --nproc_per_node 2` by tests/test_ddp.py (not a test module itself).

Each rank trains the same tiny run twice, once in one go and once split in two sessions
(the second resuming), and saves what it holds so the test can compare ranks and runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from utils.train import TrainConfig, train


def main(root: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")  # train() joins a group that already exists
    rank = dist.get_rank()
    settings = dict(domain_a=root / "A", domain_b=root / "B", image_size=32, num_features=8,
                    num_residuals=1, sample_every=0, checkpoint_every=100, log_every=2,
                    lambda_identity=5.0, pool_size=2, seed=1)
    sessions = (("whole", 4, False), ("split", 2, False), ("split", 4, True))
    for out, iterations, resume in sessions:
        result = train(TrainConfig(out=root / out, iterations=iterations, resume=resume, **settings),
                       progress=False)
        nets = {name: getattr(result, name).state_dict() for name in ("gen_A", "gen_B", "disc_A", "disc_B")}
        torch.save({"nets": nets, "iteration": result.iteration, "reason": result.reason,
                    "rows": len(result.history)}, root / out / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    print(f"rank {os.environ['RANK']} done")
