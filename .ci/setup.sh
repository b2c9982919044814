#!/usr/bin/env bash
# Installs what ssmhost needs from Debian's packages; does nothing when all is there.
# Needs root (or sudo) only when something is missing.
set -euo pipefail
packages=(
  build-essential cmake pkg-config git
  libboost-dev libboost-program-options-dev libboost-filesystem-dev
  libeigen3-dev libfftw3-dev libhdf5-dev hdf5-tools catch2 libdlpack-dev zlib1g-dev
  abigail-tools clang libc++-dev libc++abi-dev python3-h5py python3-pandas gnuplot-nox
  dataset-fashion-mnist fortunes
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages are installed"
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
