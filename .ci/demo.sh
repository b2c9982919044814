#!/usr/bin/env bash
# The main job: build, then a real short training run (S4D + ZOH on selective
# copying, 600 steps, a few seconds after the build) that leaves an HDF5 run log, then its report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/build.sh
mkdir -p runs
./build/host/ssmhost --layer s4dz --task selective_copy --steps 600 --eval-every 100 --log runs/demo.h5 --overwrite
./build/host/ssmhost report runs/demo.h5
