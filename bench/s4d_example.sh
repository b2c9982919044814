#!/usr/bin/env bash
# The S4D example configuration on sequential images (d_model 128, 4 layers,
# d_state 64, L = 784, batch 64, one input channel, post-norm LayerNorm, mean
# pooling, dropout 0.1): median time of a full training step (forward,
# backward, AdamW), ssmhost and the independent PyTorch version
# (bench/reference/s4d_torch.py) timed in the same invocation.
#
#   bash bench/s4d_example.sh [THREADS] [STEPS]     (default 2 threads, 5 steps)
#   BUILDS="build build-v4" bash bench/s4d_example.sh  (time several builds, e.g. -DSSM_MARCH=x86-64-v4)
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

builds=${BUILDS:-build}
load_before=$(cut -d' ' -f1 /proc/loadavg)
for b in $builds; do
  march=$(grep -s '^SSM_MARCH:' "$b/CMakeCache.txt" | cut -d= -f2)
  OMP_NUM_THREADS=$threads "$b/bench/bench_train_step" --threads "$threads" --steps "$steps" --warmup 2 \
    --json "$tmp/ssmhost-${b//\//_}.json"
  echo "$b ${march:-?}" >> "$tmp/builds.txt"
done
/usr/bin/python3 bench/reference/s4d_torch.py --bench --threads "$threads" --steps "$steps" --warmup 2 --json "$tmp/pytorch.json"
load_after=$(cut -d' ' -f1 /proc/loadavg)

/usr/bin/python3 - "$tmp" "$out" "$load_before" "$load_after" "$(nproc)" <<'PY'
import json, sys, platform
tmp, out = sys.argv[1], sys.argv[2]
ref = json.load(open(f"{tmp}/pytorch.json"))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
result = {"benchmark": "s4d_example_train_step", "cpu": cpu, "nproc": int(sys.argv[5]),
          "loadavg_before": float(sys.argv[3]), "loadavg_after": float(sys.argv[4]), "pytorch": ref, "ssmhost": []}
print(f"PyTorch {ref.get('torch_version', '?')}: median step {ref['step_s_median']:.3f} s")
for line in open(f"{tmp}/builds.txt"):
    build, march = line.split()
    ours = json.load(open(f"{tmp}/ssmhost-{build.replace('/', '_')}.json"))
    ours.update(build=build, march=march, ratio_pytorch_over_ssmhost=ref["step_s_median"] / ours["step_s_median"])
    result["ssmhost"].append(ours)
    print(f"ssmhost ({build}, -march={march}): median step {ours['step_s_median']:.3f} s, "
          f"x{ours['ratio_pytorch_over_ssmhost']:.2f} faster than PyTorch")
print(f"threads {ref['threads']}, load {sys.argv[3]} -> {sys.argv[4]} -> {out}")
json.dump(result, open(out, "w"), indent=1)
PY
