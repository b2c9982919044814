#!/usr/bin/env bash
# The FilippoOlivo seed's study: accuracy, training time per step, inference
# time and memory of each model (every layer plugin installed: s4d, s4, s4lr,
# ... as they land) across sequence lengths; tables and charts made by
# ssmhost from the logs and bench files alone.
#
#   bash experiments/model_comparison.sh [quick|full] [OUT_DIR]
#
# quick (1 to 4 minutes per layer on 2 cores): selective copying at L = 64
#       and 256, 1000 steps; bench at L = 256..2048.
# full  (under an hour on 2 cores for three layers, e.g. LAYERS=s4d,s4,s6):
#       L = 128, 256, 512 for 2000 steps; bench at L = 256..4096, batch 32.
# Environment: SSMHOST (default build/host/ssmhost), JOBS (default: number of
# cores, one thread each), LAYERS (default: every layer plugin found).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-quick}
out=${2:-experiments/out/models-$scale}
ssmhost=${SSMHOST:-build/host/ssmhost}
[ -x "$ssmhost" ] || { echo "no $ssmhost: build first (bash .ci/build.sh)" >&2; exit 1; }
jobs=${JOBS:-$(nproc)}
layers=${LAYERS:-$("$ssmhost" list --kind layer --format tsv | awk -F'\t' 'NR > 1 && $7 == "ok" { print $1 }' | paste -sd, -)}

case "$scale" in
  quick) lengths=64,256;       train=(--steps 1000 --eval-every 100 --eval-size 512 --d-state 32)
         bench=(--seq-len 256,512,1024,2048 --batch-size 16 --d-model 64 --d-state 32 --steps 5) ;;
  full)  lengths=128,256,512;  train=(--steps 2000 --eval-every 200 --eval-size 1024 --d-state 64)
         bench=(--seq-len 256,512,1024,2048,4096 --batch-size 32 --d-model 64 --d-state 64 --steps 7) ;;
  *) echo "usage: $0 [quick|full] [OUT_DIR]" >&2; exit 2 ;;
esac

set -x
# Accuracy: one training run per (layer, length); a failing one is recorded and the rest go on.
"$ssmhost" sweep --layer "$layers" --seq-len "$lengths" --task selective_copy "${train[@]}" --seed 0 \
  --jobs "$jobs" --threads 1 --out "$out/runs" > /dev/null || true
# Time and memory: each combination in a fresh process, one thread.
"$ssmhost" bench --layer "$layers" "${bench[@]}" --threads 1 --out "$out/bench.h5" --quiet > /dev/null || true

"$ssmhost" report "$out/runs" --sort layer,seq_len --format markdown \
  --columns layer,disc,seq_len,params,steps,best,final,step_ms,tokens_per_s,peak_mb,wall_s,status > "$out/accuracy.md"
"$ssmhost" report "$out/bench.h5" --sort layer,seq_len --format markdown \
  --columns layer,disc,seq_len,batch_size,params,step_ms,infer_ms,tokens_per_s,peak_mb,status > "$out/bench.md"
"$ssmhost" plot "$out/runs" --x seq_len --metric best --log-x --title "best eval accuracy, selective copying" \
  --out "$out/accuracy_vs_length.png"
"$ssmhost" plot "$out/bench.h5" --x seq_len --metric step_ms --log-x --log-y --title "training step, batch ${bench[3]}" \
  --out "$out/step_ms.png"
"$ssmhost" plot "$out/bench.h5" --x seq_len --metric infer_ms --log-x --log-y --out "$out/infer_ms.png"
"$ssmhost" plot "$out/bench.h5" --x seq_len --metric peak_mb --log-x --out "$out/peak_mb.png"
set +x
cat "$out/accuracy.md" "$out/bench.md"
