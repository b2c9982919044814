#!/usr/bin/env bash
# validate_detects_broken_layer: `ssmhost validate` passes a correct layer and
# fails each deliberate flaw of tests/sdk/broken_layer with the right check,
# whose FAIL line names the culprit (tensor and coordinate, or token, batch
# and channel).
#   validate_broken_layer.sh SSMHOST PLUGIN_FILE
set -euo pipefail
source "$(dirname "$0")/common.sh"
ssmhost=$1 plugin=$2

# expect FLAW STATUS LINE_REGEX [validate options...]: validate exits with
# STATUS and prints a line matching LINE_REGEX.
expect() {
  local flaw=$1 want=$2 line=$3 out rc=0
  shift 3
  out=$("$ssmhost" validate test_broken_layer --plugin-path "$plugin" --set flaw="$flaw" "$@" 2>&1) || rc=$?
  if [[ $rc != "$want" ]] || ! grep -Eq "$line" <<<"$out"; then
    echo "$out"
    fail "flaw=$flaw $*: expected exit status $want and a line matching '$line', got status $rc"
  fi
  echo "ok   flaw=$flaw $*: status $rc, $(grep -Em1 "$line" <<<"$out")"
}

# Flawless: every check passes, on both dtypes, with and without a recurrent mode.
expect none 0 '^PASS recurrent float64 +256 steps'
expect none 0 '^PASS param round trip float32'
expect none 0 '^0 failed|^[0-9]+ passed, 0 failed' --set d_model=64
expect none 0 '^SKIP recurrent float64 +no recurrent mode' --set recurrent=false
expect none 0 '^SKIP cuda float32 +not served'

# The flaws of 1.0.
expect gradient 1 '^FAIL gradient scale +worst relative error .*\(at scale\[[0-9]+\]'
expect accumulate 1 '^FAIL backward accumulates float64 .*at dscale\['
expect recurrent 1 '^FAIL recurrent float64 +first above the tolerance at token t = 0, batch b = 0, channel h = 0: step'
expect unwritten 1 '^FAIL forward float64 +y\[1, 15, 7\] is nan \(not written'
expect throws 1 '^FAIL forward float64 +.*deliberate failure of test_broken_layer'

# A wrong sign in the float32 backward only: float64 is right, so only the
# float32-against-float64 comparison can see it.
expect f32_sign 1 '^FAIL backward float32 +at dscale\[[0-9]+\]: float32 [-0-9.e]+, float64 [-0-9.e]+ \(deviation 2 '
expect f32_sign 1 '^PASS gradient scale '
# One channel (37) of 64 wrong: every coordinate of x is checked.
expect channel 1 '^FAIL gradient x +worst relative error .*\(at x\[[0-9]+, [0-9]+, 37\]' --set d_model=64
# A recurrent mode that drifts after token 100: the recurrent check runs on
# 256 tokens and names the first token, batch and channel off.
expect drift 1 '^FAIL recurrent float64 +first above the tolerance at token t = 101, batch b = 0, channel h = 0: step [-0-9.e]+, forward [-0-9.e]+'
# A NaN only in long sequences (position 16000).
expect long_nan 1 '^FAIL long sequence float64 +forward \(inference\): y\[0, 16000, 0\] is nan'
expect long_nan 1 '^PASS forward float64 '
# State kept in the instance instead of the parameters.
expect hidden 1 '^FAIL param round trip float64 +y\[0, 0, 0\] \(inference\): this instance'
echo "OK: validate catches every flaw"
