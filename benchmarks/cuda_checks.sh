#!/usr/bin/env bash
# Every check that needs a CUDA GPU, as one prepared run (benchmarks/README.md holds its figures).
#
#   bash benchmarks/cuda_checks.sh [LOG_DIR]        # from the repository root, on a CUDA machine
#
# 1. tests/test_cuda.py (mixed precision, the training command with workers, channels-last, the demo,
#    the --fast-gpu step compiled for real on tiny networks);                          <= 140 s
# 2. benchmarks/speed.py at 256 px: the chapter's loop, ours and the --fast-gpu path
#    (utils/fast_gpu.py: torch.compile with CUDA graphs; its warm-up is the compile time), at
#    batch 1 and at the batch size --fast-gpu picks here, with one CelebA epoch's minutes; each
#    batch's table is printed as soon as it is measured;                               <= 390 s
# 3. only with SWEEP=1 (its figures are in benchmarks/README.md already): the demo's settings
#    sweep, a dozen short trainings side by side in plain float32 (no TF32), each scored on the
#    held-out faces as it goes, plus benchmarks/copy_ceiling.py at 64 and 32 px.
# Each part has its own time limit, so one that hangs cannot take the others with it; parts 1-2
# together stay under 9 minutes.
set -u
LOGS=${1:-files/cuda_checks}
mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu SKIP_SPEED=1 (SWEEP=1 SWEEP_MINUTES=0.3): a rehearsal without a GPU
step() { echo "== $(date -u +%H:%M:%S) $*"; }

step "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  nproc; } 2>&1 | tee "$LOGS/machine.txt"

step "tests/test_cuda.py"
timeout 140 "$PY" -m pytest -q -s -p no:cacheprovider tests/test_cuda.py 2>&1 | grep -v "^W[0-9]" \
  | tail -40 | tee "$LOGS/tests.log"

if [ -z "${SKIP_SPEED:-}" ]; then
  step "benchmarks/speed.py --device $DEVICE: 256 px, chapter / ours / fast at batch 1 and the picked batch"
  timeout 390 "$PY" benchmarks/speed.py --device "$DEVICE" --batch-sizes 1 --picked-batch --extras fast \
    --iters 20 --rounds 3 --warmup 6 --loader-images 0 2>&1 | grep -v "^W[0-9]" | tee "$LOGS/speed.log"
fi

[ -z "${SWEEP:-}" ] && { step "done"; exit 0; }
step "built-in faces (once, before the parallel runs read them)"
"$PY" -c "from utils import demo; demo.demo_data(demo.DEMO)" >/dev/null || exit 1
step "settings sweep (parallel, float32)"
SWEEP_MINUTES=${SWEEP_MINUTES:-4}
runs=(  # name|arguments, most telling first (the GPU runs them side by side, time-sliced)
  "base64_1800|--iterations 1800 --every 300"
  "id40_64_1800|--iterations 1800 --every 300 --set lambda_identity=40"
  "s32_3700|--iterations 3700 --every 740 --set image_size=32"
  "s32id40_3700|--iterations 3700 --every 740 --set image_size=32 --set lambda_identity=40"
  "s48_2600|--iterations 2600 --every 520 --set image_size=48"
  "s32b16_3300|--iterations 3300 --every 660 --set image_size=32 --set batch_size=16"
  "s32w24_3200|--iterations 3200 --every 640 --set image_size=32 --set num_features=24 --set disc_features=(24,48,96,192)"
  "nr2_64_2500|--iterations 2500 --every 500 --set num_residuals=2"
  "base64_6000|--iterations 6000 --every 1000"
)
tmp=$(mktemp -d)
for run in "${runs[@]}"; do
  name=${run%%|*}; args=${run#*|}
  # shellcheck disable=SC2086
  timeout $(( ${SWEEP_MINUTES%.*} * 60 + 40 )) "$PY" benchmarks/demo_frontier.py --device "$DEVICE" --fp32 --threads 1 \
    --workers 0 --minutes "$SWEEP_MINUTES" --out "files/sweep/$name" $args >"$tmp/$name.log" 2>&1 &
  sleep 1
done
for size in 64 32; do
  timeout $(( ${SWEEP_MINUTES%.*} * 60 + 40 )) "$PY" benchmarks/copy_ceiling.py --device "$DEVICE" --fp32 --threads 1 \
    --size "$size" --steps 15000 --every 1000 --minutes "$SWEEP_MINUTES" >"$tmp/copy_ceiling_$size.log" 2>&1 &
done
wait
for log in "$tmp"/*.log; do echo "### $(basename "$log" .log)"; grep -v "^  \|^Training\|it/s\]" "$log"; done \
  >"$LOGS/sweep.log"
tail -c 3000 "$LOGS/sweep.log"
step "done"
