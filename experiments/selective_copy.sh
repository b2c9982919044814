#!/usr/bin/env bash
# The Mamba paper's selective-copying comparison (Table 1), scaled to a 2-core
# machine: vocabulary 16, 16 tokens to memorise, a blank region of L = 256,
# 2 layers, d_model 64, d_state 16.
#
#   bash experiments/selective_copy.sh [STEPS] [OUT_DIR]      (default 2000 steps)
#     Mamba and H3 with the inner layers s6, s4 and s4d, and s6, s4d, gated_mlp,
#     lstm and attention alone; one run each (2 threads), the task's defaults
#     (post-norm LayerNorm, lr 0.01); then the table of best eval token accuracy.
#     About 30 minutes on 2 idle cores at 2000 steps (mamba + s6: 0.1 s a step).
#
#   bash experiments/selective_copy.sh long [OUT_DIR]
#     Mamba's recipe, 12,000 steps: pre-norm RMSNorm blocks, lr 0.003 with 200
#     warm-up steps (cosine), for mamba + s6, mamba + s4d and s6 alone, one
#     thread each (JOBS=1 runs them one after the other; the default runs them
#     side by side on the cores). About 25 minutes per mamba run on one core.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-2000}
long=false
[ "$steps" = long ] && long=true && steps=12000
out=${2:-experiments/out/selective-copy-$steps}
$long && out=${2:-experiments/out/sc-long}
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
if $long; then
  common=(--task selective_copy --vocab 16 --n-tokens 16 --seq-len 256 --n-layers 2 --d-model 64 --d-state 16
          --batch-size 32 --steps 12000 --lr 0.003 --warmup 200 --prenorm --norm rms --eval-every 1000
          --eval-size 512 --checkpoint-every 1000 --threads 1 --seed 0 --quiet)
  jobs=${JOBS:-$(nproc)}
  names=(mamba-s6 mamba-s4d s6)
  args=("--layer mamba --inner s6" "--layer mamba --inner s4d" "--layer s6")
  for i in "${!names[@]}"; do
    # shellcheck disable=SC2086
    run "${names[$i]}" ${args[$i]} &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  done
  wait
  "$ssmhost" report "$out" --sort -best --format markdown --columns layer,inner,params,steps,best,final,step_ms,wall_s,status |
    tee "$out/table.md"
  exit 0
fi
for inner in s6 s4 s4d; do
  run "mamba-$inner" --layer mamba --inner "$inner"
  run "h3-$inner" --layer h3 --inner "$inner"
done
for layer in s6 s4d gated_mlp lstm attention; do run "$layer" --layer "$layer"; done
"$ssmhost" report "$out" --sort -best --format markdown --columns layer,inner,params,steps,best,final,step_ms,peak_mb,status |
  tee "$out/table.md"
