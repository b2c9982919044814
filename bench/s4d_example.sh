#!/usr/bin/env bash
# The S4D example configuration on sequential images (d_model 128, 4 layers,
# d_state 64, L = 784, batch 64, one input channel, post-norm LayerNorm, mean
# pooling, dropout 0.1): median time of a full training step (forward,
# backward, AdamW), ssmhost and the independent PyTorch version
# (bench/reference/s4d_torch.py) timed in the same invocation.
#
#   bash bench/s4d_example.sh [THREADS] [STEPS]     (default 2 threads, 5 steps)
#
# Needs a build (bash .ci/build.sh) and Debian's python3-torch. Writes
# bench/results/s4d_example-<UTC time>.json. Run it on an otherwise idle machine:
# the load average is recorded beside the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
steps=${2:-5}
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/s4d_example-$stamp.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

load_before=$(cut -d' ' -f1 /proc/loadavg)
OMP_NUM_THREADS=$threads ./build/bench/bench_train_step --threads "$threads" --steps "$steps" --warmup 2 --json "$tmp/ssmhost.json"
/usr/bin/python3 bench/reference/s4d_torch.py --bench --threads "$threads" --steps "$steps" --warmup 2 --json "$tmp/pytorch.json"
load_after=$(cut -d' ' -f1 /proc/loadavg)

/usr/bin/python3 - "$tmp/ssmhost.json" "$tmp/pytorch.json" "$out" "$load_before" "$load_after" "$(nproc)" <<'PY'
import json, sys, platform
ours, ref = (json.load(open(p)) for p in sys.argv[1:3])
result = {"benchmark": "s4d_example_train_step", "cpu": platform.processor() or platform.machine(),
          "nproc": int(sys.argv[6]), "loadavg_before": float(sys.argv[4]), "loadavg_after": float(sys.argv[5]),
          "ssmhost": ours, "pytorch": ref,
          "ratio_pytorch_over_ssmhost": ref["step_s_median"] / ours["step_s_median"]}
json.dump(result, open(sys.argv[3], "w"), indent=1)
print(f"ssmhost median step {ours['step_s_median']:.3f} s | PyTorch {ref.get('torch_version','?')} "
      f"median step {ref['step_s_median']:.3f} s | speed-up x{result['ratio_pytorch_over_ssmhost']:.2f} "
      f"(threads {ours['threads']}, load {sys.argv[4]} -> {sys.argv[5]}) -> {sys.argv[3]}")
PY
