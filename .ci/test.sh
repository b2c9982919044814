#!/usr/bin/env bash
# Every test: build, then ctest (unit, numerics, loader errors, SDK/ABI, training).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/build.sh
cd build
ctest --output-on-failure -j2 --timeout 900
