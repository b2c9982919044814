#!/usr/bin/env bash
# The SAiDL seed's study, done with correct (causal) kernels: the same S4 and
# S4D models trained under each discretization -- zoh, bilinear, dirac
# (forward Euler), backward_euler, async -- same seed, same data; then the
# table and charts, all made by ssmhost from the logs (docs/results-discretizations.md).
#
#   bash experiments/discretizations.sh [quick|full] [OUT_DIR]
#
# quick (about 30 s per run on 2 cores): selective copying, L = 64, 1500 steps.
# full  (about 1 hour on 2 cores): sequential Fashion-MNIST (L = 784, Debian's
#       dataset-fashion-mnist, installed by .ci/setup.sh), d_model 64, 2 layers,
#       d_state 32, batch 32, one epoch, evaluated on 2000 test images.
# Forward Euler is unstable at S4's usual initial steps (|1 + dt lambda| > 1 for
# dt = 0.1 and |Im lambda| up to ~N), so dirac is also run with dt in
# [1e-4, 5e-4], where every mode starts stable (runs-small-dt/).
# Environment: SSMHOST (default build/host/ssmhost), LAYERS (default s4,s4d),
# DISCS (default the five above), JOBS (default: number of cores, one thread each).
# Running it again resumes interrupted runs and skips finished ones.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-quick}
out=${2:-experiments/out/discretizations-$scale}
ssmhost=${SSMHOST:-build/host/ssmhost}
[ -x "$ssmhost" ] || { echo "no $ssmhost: build first (bash .ci/build.sh)" >&2; exit 1; }
jobs=${JOBS:-$(nproc)}
layers=${LAYERS:-s4,s4d}
discs=${DISCS:-zoh,bilinear,dirac,backward_euler,async}

case "$scale" in
  quick) task=(--task selective_copy --seq-len 64 --d-state 32 --steps 1500 --eval-every 100 --eval-size 512) ;;
  full)  task=(--task sfashion --d-model 64 --n-layers 2 --d-state 32 --batch-size 32 --epochs 1 --eval-every 625
               --eval-size 2000 --lr 0.01) ;;
  *) echo "usage: $0 [quick|full] [OUT_DIR]" >&2; exit 2 ;;
esac

set -x
# A discretization that diverges (forward Euler, 'dirac', can) fails its run; the
# sweep goes on and the table shows it, so its exit status is not fatal here.
"$ssmhost" sweep --layer "$layers" --disc "$discs" "${task[@]}" --seed 0 --jobs "$jobs" --threads 1 \
  --out "$out/runs" > /dev/null || true
if [[ ",$discs," == *,dirac,* ]]; then
  "$ssmhost" sweep --layer "$layers" --disc dirac --dt-min 0.0001 --dt-max 0.0005 "${task[@]}" --seed 0 \
    --jobs "$jobs" --threads 1 --out "$out/runs-small-dt" > /dev/null || true
fi
"$ssmhost" report "$out"/runs* --sort -best --format markdown \
  --columns run,layer,disc,dt_max,params,steps,best,final,step_ms,wall_s,status > "$out/table.md"
"$ssmhost" plot "$out/runs" --metric accuracy --title "${task[1]}: eval accuracy by layer and discretization" \
  --out "$out/accuracy.png"
"$ssmhost" plot "$out/runs" --metric loss --smooth 50 --log-y --out "$out/loss.png"
set +x
cat "$out/table.md"
