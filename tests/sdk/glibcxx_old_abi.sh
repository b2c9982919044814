#!/usr/bin/env bash
# sdk_glibcxx_old_abi: the example built with g++ and the pre-C++11 libstdc++
# ABI (-D_GLIBCXX_USE_CXX11_ABI=0, old std::string) loads and passes validate.
#   glibcxx_old_abi.sh SSMHOST BUILD_DIR SOURCE_DIR CMAKE
set -euo pipefail
source "$(dirname "$0")/common.sh"
ssmhost=$1 build=$2 src=$3 cmake=$4
need g++ "build the example plugin"
need nm "check which std::string ABI the plugin uses"

prefix=$tmp/prefix
install_sdk "$cmake" "$build" "$prefix"
build_example "$cmake" "$src" "$prefix" "$tmp/example" -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_CXX_FLAGS=-D_GLIBCXX_USE_CXX11_ABI=0
plugin=$tmp/example/build/example_moving_average.so

# The old ABI really is in use: the plugin needs no std::__cxx11 symbol.
# (The symbols are read once: `nm | grep -q` under pipefail fails at random
# when grep stops reading early and nm gets SIGPIPE.)
undefined=$(nm -D --undefined-only "$plugin" | c++filt)
if grep -q '__cxx11' <<<"$undefined"; then
  grep '__cxx11' <<<"$undefined"
  fail "the plugin still uses the C++11 std::string ABI"
fi
grep -q 'std::' <<<"$undefined" || fail "expected the plugin to use libstdc++ at all"

validate_example "$ssmhost" "$tmp/example/build"
echo "OK: an old-ABI libstdc++ plugin loads into the host"
