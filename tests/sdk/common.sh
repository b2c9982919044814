# Shared by the SDK test scripts (sourced after `set -euo pipefail`): a temp
# dir removed on exit, skip/fail helpers, and the steps several tests share.

SKIP_CODE=77  # ctest SKIP_RETURN_CODE: a tool the test needs is not installed
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ssm-sdk-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unset SSM_PLUGIN_PATH  # search only the paths a test names (and the host's default)

skip() {
  echo "SKIP: $*"
  exit "$SKIP_CODE"
}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
# need TOOL WHY: skips the test when TOOL is not on PATH.
need() {
  command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed (needed to $2)"
}
# Prints a command, then runs it.
run() {
  echo "+ $*"
  "$@"
}

# install_sdk CMAKE BUILD_DIR PREFIX: installs the whole project (SDK headers,
# CMake package, ssmhost and its plugins) the way a user would.
install_sdk() {
  echo "+ $1 --install $2 --prefix $3"
  "$1" --install "$2" --prefix "$3" >"$tmp/install.log" 2>&1 || {
    cat "$tmp/install.log"
    fail "installing the build tree $2 failed"
  }
}

# build_example CMAKE SOURCE_DIR PREFIX DEST [cmake options...]: copies the
# example the SDK installed, PREFIX/share/ssm/examples/moving_average, out of
# the prefix (as a newcomer would), checks it is the source tree's
# sdk/examples/moving_average, then configures and builds it against the SDK
# installed in PREFIX. The plugin ends up as DEST/build/example_moving_average.so.
build_example() {
  local cmake=$1 src=$2 prefix=$3 dest=$4
  shift 4
  local example=$prefix/share/ssm/examples/moving_average
  [[ -f $example/CMakeLists.txt ]] || fail "the install has no example: $example/CMakeLists.txt"
  diff -r -x 'build' -x 'build-*' "$src/sdk/examples/moving_average" "$example" ||
    fail "the installed example $example differs from the source tree's"
  mkdir -p "$dest"
  cp -r "$example" "$dest/src"
  chmod -R u+w "$dest/src"
  echo "+ $cmake -S $dest/src -B $dest/build -DCMAKE_PREFIX_PATH=$prefix $*"
  "$cmake" -S "$dest/src" -B "$dest/build" -DCMAKE_PREFIX_PATH="$prefix" "$@" >"$tmp/configure.log" 2>&1 || {
    cat "$tmp/configure.log"
    fail "configuring the example against the installed SDK failed"
  }
  echo "+ $cmake --build $dest/build"
  "$cmake" --build "$dest/build" >"$tmp/build.log" 2>&1 || {
    cat "$tmp/build.log"
    fail "building the example against the installed SDK failed"
  }
  [[ -f $dest/build/example_moving_average.so ]] || fail "the build made no example_moving_average.so"
}

# validate_example SSMHOST PLUGIN_DIR: the example loads and passes every check.
validate_example() {
  echo "+ $1 validate example_moving_average --plugin-path $2"
  local out
  if ! out=$("$1" validate example_moving_average --plugin-path "$2" 2>&1); then
    echo "$out"
    fail "ssmhost validate failed for the example built here"
  fi
  echo "$out"
  grep -q "^PASS gradient taps" <<<"$out" || fail "validate did not check the gradient of 'taps'"
  grep -q "^PASS recurrent" <<<"$out" || fail "validate did not check the recurrent mode"
  # An exception thrown in the plugin comes back as its message, not a crash.
  local rc=0
  out=$("$1" validate example_moving_average --plugin-path "$2" --set window=0 2>&1) || rc=$?
  if [[ $rc != 1 ]] || ! grep -q "^FAIL create .*option 'window' must be >= 1, got 0" <<<"$out"; then
    echo "$out"
    fail "a bad option did not fail create with the plugin's message (exit status $rc)"
  fi
  grep "^FAIL create" <<<"$out"
}
