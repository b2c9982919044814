#!/usr/bin/env bash
# validate_detects_broken_layer: `ssmhost validate` passes a correct layer and
# fails each deliberate flaw of tests/sdk/broken_layer with the right check.
#   validate_broken_layer.sh SSMHOST PLUGIN_FILE
set -euo pipefail
source "$(dirname "$0")/common.sh"
ssmhost=$1 plugin=$2

# expect FLAW STATUS LINE_REGEX: validate exits with STATUS and prints a line matching LINE_REGEX.
expect() {
  local flaw=$1 want=$2 line=$3 out rc=0
  out=$("$ssmhost" validate test_broken_layer --plugin-path "$plugin" --set flaw="$flaw" 2>&1) || rc=$?
  if [[ $rc != "$want" ]] || ! grep -Eq "$line" <<<"$out"; then
    echo "$out"
    fail "flaw=$flaw: expected exit status $want and a line matching '$line', got status $rc"
  fi
  echo "ok   flaw=$flaw: status $rc, $(grep -Em1 "$line" <<<"$out")"
}

expect none 0 '^SKIP recurrent +no recurrent mode'
expect gradient 1 '^FAIL gradient scale +worst relative error'
expect accumulate 1 '^FAIL backward accumulates'
expect recurrent 1 '^FAIL recurrent'
expect unwritten 1 '^FAIL forward float64 +y .*not written'
expect throws 1 '^FAIL forward float64 +.*deliberate failure of test_broken_layer'
echo "OK: validate catches every flaw"
