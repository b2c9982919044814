#!/usr/bin/env bash
# The SAiDL seed's study: one S4D model trained with each discretization that
# is installed (zoh, bilinear, backward_euler, dirac, async, s6disc, ...), same seed,
# same data; then its table and charts, all made by ssmhost from the logs.
#
#   bash experiments/disc_comparison.sh [quick|full] [OUT_DIR]
#
# quick (about 30 s per discretization on 2 cores): selective copying, L = 64, 1500 steps.
# full  (about 30 minutes on 2 cores): sequential Fashion-MNIST (L = 784, Debian
#       package dataset-fashion-mnist, installed by .ci/setup.sh), one epoch.
# Environment: SSMHOST (default build/host/ssmhost), JOBS (default: number of
# cores, one thread each), DISCS (default: every discretization found).
# Running it again resumes interrupted runs and skips finished ones.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-quick}
out=${2:-experiments/out/disc-$scale}
ssmhost=${SSMHOST:-build/host/ssmhost}
[ -x "$ssmhost" ] || { echo "no $ssmhost: build first (bash .ci/build.sh)" >&2; exit 1; }
jobs=${JOBS:-$(nproc)}
discs=${DISCS:-$("$ssmhost" list --kind disc --format tsv | awk -F'\t' 'NR > 1 && $7 == "ok" { print $1 }' | paste -sd, -)}

case "$scale" in
  quick) task=(--task selective_copy --seq-len 64 --d-state 32 --steps 1500 --eval-every 100 --eval-size 512) ;;
  full)  task=(--task sfashion --d-model 64 --n-layers 4 --d-state 64 --batch-size 32 --epochs 1 --eval-every 200
               --eval-size 2000 --lr 0.01) ;;
  *) echo "usage: $0 [quick|full] [OUT_DIR]" >&2; exit 2 ;;
esac

set -x
# A discretization that diverges (forward Euler, 'dirac', can) fails its run; the
# sweep goes on and the table shows it, so its exit status is not fatal here.
"$ssmhost" sweep --layer s4d --disc "$discs" "${task[@]}" --seed 0 --jobs "$jobs" --threads 1 --out "$out/runs" \
  > /dev/null || true
"$ssmhost" report "$out/runs" --sort -best --format markdown > "$out/table.md"
"$ssmhost" plot "$out/runs" --metric accuracy --title "S4D on ${task[1]}: eval accuracy by discretization" \
  --out "$out/accuracy.png"
"$ssmhost" plot "$out/runs" --metric loss --smooth 50 --log-y --out "$out/loss.png"
"$ssmhost" plot "$out/runs" --metric accuracy --x time --out "$out/accuracy_time.svg"
set +x
cat "$out/table.md"
