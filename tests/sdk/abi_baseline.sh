#!/usr/bin/env bash
# abi_baseline: the ABI of ssm/abi.h, as recorded by abidw from the probe
# library (sdk/abi/abi_probe.c), must equal the committed baseline
# sdk/abi/ssm_abi.baseline.xml. Any difference fails, additions included: an
# intentional MINOR (append-only) change refreshes the baseline, see
# sdk/abi/README.md.
#   abi_baseline.sh PROBE_SO BASELINE SOURCE_DIR [--refresh]
set -euo pipefail
source "$(dirname "$0")/common.sh"
probe=$1 baseline=$2 src=$3 mode=${4:-check}

# The probe must reach every type abi.h defines, or abidw cannot see it.
missing=""
for name in $(grep -oE '^typedef (struct|enum) [a-z_0-9]+|\(\*[a-z_0-9]+_fn\)' "$src/sdk/include/ssm/abi.h" |
  grep -oE '[a-z_0-9]+$|[a-z_0-9]+_fn'); do
  grep -qw "$name" "$src/sdk/abi/abi_probe.c" || missing+=" $name"
done
[[ -z $missing ]] || fail "sdk/abi/abi_probe.c does not use:$missing (add them to ssm_abi_probe's parameters)"

need abidw "record the ABI of the probe library (Debian: abigail-tools)"
need abidiff "compare the ABI with the baseline (Debian: abigail-tools)"
# No paths in the record, so that it does not depend on where the tree is.
run abidw --no-corpus-path --no-comp-dir-path --short-locs --out-file "$tmp/current.xml" "$probe"

if [[ $mode == --refresh ]]; then
  cp "$tmp/current.xml" "$baseline"
  echo "wrote $baseline; review it with git diff and commit it"
  exit 0
fi
[[ -f $baseline ]] || fail "no baseline $baseline"

set +e
abidiff --harmless "$baseline" "$tmp/current.xml" >"$tmp/report.txt" 2>&1
rc=$?
set -e
# abidiff's exit status is a bit set: 1 error, 2 usage error, 4 ABI change,
# 8 incompatible ABI change.
if ((rc != 0)); then
  cat "$tmp/report.txt"
  ((rc & 1 || rc & 2)) && fail "abidiff could not compare (exit status $rc)"
  ((rc & 8)) && echo "abidiff: INCOMPATIBLE change (needs SSM_ABI_MAJOR + 1)"
  ((rc & 4)) && echo "abidiff: the ABI changed"
  fail "the ABI of ssm/abi.h differs from $baseline. If the change is an intended append-only MINOR
change, bump SSM_ABI_MINOR and refresh the baseline (sdk/abi/README.md):
  cmake --build <build> --target ssm_abi_baseline_refresh"
fi
echo "OK: the ABI equals the baseline"
