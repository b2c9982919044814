#!/usr/bin/env bash
# sdk_find_package_version: the installed package is version 0.x with
# SameMajorVersion compatibility, so find_package(SSM 0.1) succeeds and
# find_package(SSM 1.0) fails (a 1.x SDK may break 0.x plugins, and back).
#   find_package_version.sh BUILD_DIR SOURCE_DIR CMAKE
set -euo pipefail
source "$(dirname "$0")/common.sh"
build=$1 src=$2 cmake=$3
prefix=$tmp/prefix
install_sdk "$cmake" "$build" "$prefix"

# configure VERSION: configures the probe project asking for that version.
configure() {
  rm -rf "$tmp/build"
  echo "+ find_package(SSM $1)"
  "$cmake" -S "$src/tests/sdk/find_package_version" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DSSM_WANT_VERSION="$1" >"$tmp/out.log" 2>&1
}

configure 0.1 || {
  cat "$tmp/out.log"
  fail "find_package(SSM 0.1) failed"
}
grep 'found SSM' "$tmp/out.log"
if configure 1.0; then
  cat "$tmp/out.log"
  fail "find_package(SSM 1.0) succeeded, but the SDK is 0.x (SameMajorVersion)"
fi
grep -q 'requested version "1.0"' "$tmp/out.log" || {
  cat "$tmp/out.log"
  fail "find_package(SSM 1.0) failed, but not because of the version"
}
echo "find_package(SSM 1.0) was refused, as it must be"
echo "OK: SSM 0.x accepts 0.1 and refuses 1.0"
