#!/usr/bin/env bash
# sdk_install_out_of_tree: install the project, build the installed example
# plugin against the installed SDK with g++ in a folder of its own, and load
# it; `cmake --install` of the example honours --prefix, defaults to the SDK's
# prefix, and follows SSM_PLUGIN_INSTALL_DIR.
#   install_out_of_tree.sh SSMHOST BUILD_DIR SOURCE_DIR CMAKE
set -euo pipefail
source "$(dirname "$0")/common.sh"
ssmhost=$1 build=$2 src=$3 cmake=$4
need g++ "build the example plugin"

prefix=$tmp/prefix
install_sdk "$cmake" "$build" "$prefix"
for f in include/ssm/abi.h include/ssm/sdk.hpp include/dlpack/dlpack.h lib/cmake/SSM/SSMConfig.cmake \
  lib/cmake/SSM/SSMConfigVersion.cmake lib/cmake/SSM/SSMPlugin.cmake lib/cmake/SSM/ssm_plugin.map bin/ssmhost \
  share/ssm/examples/moving_average/CMakeLists.txt share/ssm/examples/moving_average/moving_average.cpp; do
  [[ -e $prefix/$f ]] || fail "the install has no $f"
done

build_example "$cmake" "$src" "$prefix" "$tmp/example" -DCMAKE_CXX_COMPILER=g++
plugins=$tmp/example/build
installed_host=$prefix/bin/ssmhost

# list: one row, kind layer (tsv columns: id kind version abi path description).
echo "+ $installed_host list --plugin-path $plugins --format tsv"
listing=$("$installed_host" list --plugin-path "$plugins" --format tsv)
echo "$listing"
row=$(awk -F'\t' '$1 == "example_moving_average"' <<<"$listing")
[[ -n $row ]] || fail "ssmhost list does not show example_moving_average"
[[ $(cut -f2 <<<"$row") == layer ]] || fail "example_moving_average is not listed as a layer: $row"
[[ $(cut -f5 <<<"$row") == "$plugins/example_moving_average.so" ]] || fail "listed from the wrong file: $row"

# info: its options with their defaults.
echo "+ $installed_host info example_moving_average --plugin-path $plugins"
info=$("$installed_host" info example_moving_average --plugin-path "$plugins")
echo "$info"
grep -Eq -- '--window +int +default: 4' <<<"$info" || fail "info does not show the option --window (default 4)"
grep -Eq -- '--d-model +int' <<<"$info" || fail "info does not show the option --d-model"

# validate, in the installed host and in the build tree's host.
validate_example "$installed_host" "$plugins"
validate_example "$ssmhost" "$plugins"

# in_sdk_prefix: the example's .so files anywhere in the SDK's prefix.
in_sdk_prefix() { find "$prefix" -name 'example_moving_average*.so' -print; }

# `cmake --install --prefix DIR` of the example puts it into DIR/lib/ssm/plugins
# and nowhere else: not into the SDK's prefix.
elsewhere=$tmp/elsewhere
mkdir "$elsewhere"
run "$cmake" --install "$plugins" --prefix "$elsewhere"
[[ -f $elsewhere/lib/ssm/plugins/example_moving_average.so ]] ||
  fail "cmake --install --prefix $elsewhere did not put the example into $elsewhere/lib/ssm/plugins"
installed=$(cd "$elsewhere" && find . -type f)
[[ $installed == ./lib/ssm/plugins/example_moving_average.so ]] ||
  fail "cmake --install --prefix $elsewhere installed other files too:"$'\n'"$installed"
[[ -z $(in_sdk_prefix) ]] || fail "cmake --install --prefix $elsewhere also wrote into the SDK's prefix: $(in_sdk_prefix)"
echo "+ $installed_host list --plugin-path $elsewhere/lib/ssm/plugins --format tsv"
listing=$("$installed_host" list --plugin-path "$elsewhere/lib/ssm/plugins" --format tsv)
row=$(awk -F'\t' '$1 == "example_moving_average"' <<<"$listing")
echo "$row"
[[ -n $row ]] || fail "ssmhost list --plugin-path $elsewhere/lib/ssm/plugins does not show example_moving_average"
[[ $(cut -f5 <<<"$row") == "$elsewhere/lib/ssm/plugins/example_moving_average.so" ]] ||
  fail "listed from the wrong file: $row"

# A plain `cmake --install` of the example puts it beside the SDK's plugins
# (its install prefix defaults to the SDK's), where the installed host finds
# it without --plugin-path.
run "$cmake" --install "$plugins" >/dev/null
[[ -f $prefix/lib/ssm/plugins/example_moving_average.so ]] || fail "the example was not installed into lib/ssm/plugins"
"$installed_host" list --format tsv | awk -F'\t' '$1 == "example_moving_average" {found = 1} END {exit !found}' ||
  fail "the installed host does not find the installed example"

# SSM_PLUGIN_INSTALL_DIR chooses the folder; relative, it still follows --prefix.
custom=$tmp/custom
echo "+ $cmake -S $tmp/example/src -B $plugins -DSSM_PLUGIN_INSTALL_DIR=opt/my-plugins"
"$cmake" -S "$tmp/example/src" -B "$plugins" -DSSM_PLUGIN_INSTALL_DIR=opt/my-plugins >"$tmp/reconfigure.log" 2>&1 || {
  cat "$tmp/reconfigure.log"
  fail "reconfiguring the example with SSM_PLUGIN_INSTALL_DIR failed"
}
run "$cmake" --install "$plugins" --prefix "$custom" >/dev/null
[[ -f $custom/opt/my-plugins/example_moving_average.so ]] ||
  fail "SSM_PLUGIN_INSTALL_DIR=opt/my-plugins did not install into $custom/opt/my-plugins"
echo "OK: the installed example builds against the installed SDK, loads, and installs where --prefix says"
