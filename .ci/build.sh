#!/usr/bin/env bash
# Installs the dependencies if needed, then configures and builds everything in build/.
# CUDA code is built when nvcc is found (SSM_CUDA=AUTO); set SSM_CUDA=OFF to skip it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSSM_CUDA="${SSM_CUDA:-AUTO}" > build-configure.log \
  || { cat build-configure.log; exit 1; }
cmake --build build -j"$(nproc)"
