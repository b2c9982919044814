#!/usr/bin/env bash
# abi_c11: ssm/abi.h is C11, warning-free with gcc and clang; the layout
# table compiles with clang++ too.
#   abi_c11.sh SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/common.sh"
src=$1
flags=(-std=c11 -Wall -Wextra -Werror -pedantic -Wstrict-prototypes -I"$src/sdk/include")
need gcc "compile abi.h as C"
run gcc "${flags[@]}" -c "$src/sdk/abi/abi_probe.c" -o "$tmp/probe-gcc.o"
need clang "compile abi.h as C with a second compiler"
run clang "${flags[@]}" -c "$src/sdk/abi/abi_probe.c" -o "$tmp/probe-clang.o"
need clang++ "compile the layout table with a second C++ compiler"
run clang++ -std=c++17 -Wall -Wextra -Werror -pedantic -I"$src/sdk/include" -fsyntax-only \
  "$src/sdk/abi/abi_layout_check.cpp"
echo "OK: abi.h compiles as C11 with gcc and clang"
