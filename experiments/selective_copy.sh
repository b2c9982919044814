#!/usr/bin/env bash
# The Mamba paper's selective-copying comparison (Table 1), scaled to a 2-core
# machine: vocabulary 16, 16 tokens to memorise, a blank region of L = 256,
# 2 layers, d_model 64, d_state 16. Mamba and H3 with the inner layers s6, s4
# and s4d, and s6, s4d, gated_mlp, lstm and attention alone; one run each
# (2 threads), then the table of best eval token accuracy.
#
#   bash experiments/selective_copy.sh [STEPS] [OUT_DIR]      (default 2000 steps)
#
# About 30 minutes on 2 idle cores at 2000 steps (mamba + s6: 0.1 s a step).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-2000}
out=${2:-experiments/out/selective-copy-$steps}
ssmhost=${SSMHOST:-build/host/ssmhost}
[ -x "$ssmhost" ] || { echo "no $ssmhost: build first (bash .ci/build.sh)" >&2; exit 1; }
mkdir -p "$out"
common=(--task selective_copy --vocab 16 --n-tokens 16 --seq-len 256 --n-layers 2 --d-model 64 --d-state 16
        --batch-size 32 --steps "$steps" --eval-every 250 --eval-size 512 --threads 2 --quiet)
run() {  # NAME ARGS...: one run, skipped when its log says it completed
  local name=$1
  shift
  if [ -f "$out/$name.h5" ] && "$ssmhost" report "$out/$name.h5" 2>/dev/null | grep -q "status *completed"; then return; fi
  echo "== $name: $*"
  "$ssmhost" "$@" "${common[@]}" --log "$out/$name.h5" --overwrite || echo "== $name failed (its log says why)"
}
for inner in s6 s4 s4d; do
  run "mamba-$inner" --layer mamba --inner "$inner"
  run "h3-$inner" --layer h3 --inner "$inner"
done
for layer in s6 s4d gated_mlp lstm attention; do run "$layer" --layer "$layer"; done
"$ssmhost" report "$out" --sort -best --format markdown --columns layer,inner,params,steps,best,final,step_ms,peak_mb,status |
  tee "$out/table.md"
