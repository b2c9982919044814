#!/usr/bin/env bash
# sdk_clang_libcxx: the example built with clang++ and libc++ against the
# installed SDK loads into the g++/libstdc++ host and passes validate.
#   clang_libcxx.sh SSMHOST BUILD_DIR SOURCE_DIR CMAKE
set -euo pipefail
source "$(dirname "$0")/common.sh"
ssmhost=$1 build=$2 src=$3 cmake=$4
need clang++ "build the example with another compiler"
need readelf "check which C++ library the plugin links"
# libc++ is a separate package from clang (libc++-dev, libc++abi-dev).
echo 'int main() {}' >"$tmp/probe.cpp"
clang++ -stdlib=libc++ "$tmp/probe.cpp" -o "$tmp/probe" 2>/dev/null ||
  skip "clang++ cannot link with -stdlib=libc++ (install libc++-dev and libc++abi-dev)"

prefix=$tmp/prefix
install_sdk "$cmake" "$build" "$prefix"
build_example "$cmake" "$src" "$prefix" "$tmp/example" -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS=-stdlib=libc++ -DCMAKE_MODULE_LINKER_FLAGS=-stdlib=libc++ \
  -DCMAKE_SHARED_LINKER_FLAGS=-stdlib=libc++
plugin=$tmp/example/build/example_moving_average.so

# It really is a libc++ plugin: libc++ is NEEDED, libstdc++ is not.
needed=$(readelf -d "$plugin" | grep NEEDED || true)
echo "$needed"
grep -q 'libc++\.so' <<<"$needed" || fail "the plugin does not link libc++"
if grep -q 'libstdc++' <<<"$needed"; then fail "the plugin links libstdc++"; fi
if command -v ldd >/dev/null; then
  ldd "$plugin"
  libs=$(ldd "$plugin")
  if grep -q 'libstdc++' <<<"$libs"; then fail "the plugin pulls in libstdc++"; fi
fi
# Outputs are read whole before grep -q: under pipefail a grep that stops
# early would SIGPIPE the writer and fail the test at random.
compiler=$( (readelf --debug-dump=info "$plugin" 2>/dev/null || true; readelf -p .comment "$plugin" || true) | grep -i clang || true)
[[ -n $compiler ]] || fail "the plugin was not compiled by clang"

# The host is the build tree's ssmhost: g++ and libstdc++.
host_needed=$(readelf -d "$ssmhost")
grep -q 'libstdc++' <<<"$host_needed" || fail "expected the host to link libstdc++"
validate_example "$ssmhost" "$tmp/example/build"
echo "OK: a clang++/libc++ plugin loads into the g++/libstdc++ host"
