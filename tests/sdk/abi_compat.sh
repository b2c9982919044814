#!/usr/bin/env bash
# abi_compat_v1_0, abi_compat_v1_2: minor versions really work. The plain-C
# plugins of tests/abi_compat, built against the frozen ABI 1.0 header or the
# simulated 1.2 one (bigger structs, junk in the fields a 1.1 host does not
# know, options strided by their own size), load into this 1.1 host and pass
# every check:
#   - `list --format tsv` shows both plugins with their ABI (column 4);
#   - `info` shows every option with its name, type and default: the host
#     walked the option array by each element's struct_size;
#   - `validate` passes the layer, the discretization, and s4d + the
#     discretization's suffix (a 1.0 / 1.2 child of the built-in 1.1 s4d);
#   - the layer's probe_disc option makes it create a discretization through
#     host->child_create and check the ssm_child the host fills: a 1.1 child
#     (zoh) and the other build's (a 1.0 parent with a 1.2 child and back).
#   abi_compat.sh SSMHOST PLUGIN_DIR ABI SUFFIX OTHER_DIR OTHER_ABI
# ABI is 1.0 or 1.2; SUFFIX is its discretization's layer suffix; OTHER_DIR
# holds the other build, of ABI OTHER_ABI.
set -euo pipefail
source "$(dirname "$0")/common.sh"
ssmhost=$1 dir=$2 abi=$3 suffix=$4 other_dir=$5 other_abi=$6
layer=test_compat_layer_v${abi/./_}
disc=test_compat_disc_v${abi/./_}
other_disc=test_compat_disc_v${other_abi/./_}
[[ -d $dir && -d $other_dir ]] || fail "no plugin folder $dir or $other_dir (build the project first)"

# ok NAME CMD...: CMD exits 0; its output is kept in $out (and shown on failure).
out=""
ok() {
  local name=$1 rc=0
  shift
  echo "+ $*"
  out=$("$@" 2>&1) || rc=$?
  if ((rc != 0)); then
    echo "$out"
    fail "$name: exit status $rc"
  fi
}
# has NAME REGEX: a line of $out matches REGEX (grep -E).
has() {
  if ! grep -Eq -- "$2" <<<"$out"; then
    echo "$out"
    fail "$1: no line matches '$2'"
  fi
}
# validated NAME: the validate output in $out has no FAIL line and at least one PASS.
validated() {
  if grep -q '^FAIL' <<<"$out" || ! grep -q '^PASS' <<<"$out"; then
    echo "$out"
    fail "$1: validate reported a failure"
  fi
  echo "ok   $1: $(tail -n 1 <<<"$out")"
}

# --- list: both plugins, with the ABI they were built for
ok "list" "$ssmhost" list --plugin-path "$dir" --format tsv
for id in "$layer" "$disc"; do
  row=$(awk -F'\t' -v id="$id" '$1 == id' <<<"$out")
  [[ -n $row ]] || {
    echo "$out"
    fail "list: no row for $id"
  }
  got_abi=$(cut -f4 <<<"$row") status=$(cut -f7 <<<"$row")
  [[ $got_abi == "$abi" ]] || fail "list: $id has ABI '$got_abi', expected $abi"
  [[ $status == ok ]] || fail "list: $id has status '$status'"
  echo "ok   list: $id ABI $got_abi, $status"
done

# --- info: every option, by name, type and default (the option stride)
ok "info $layer" "$ssmhost" info "$layer" --plugin-path "$dir"
has "info $layer" "^$layer \(layer plugin, version 0\.1\.0, ABI $abi\)$"
has "info $layer" '^  --d-model +int +default: 8 +channels H$'
has "info $layer" '^  --decay +float +default: 0\.5 +leak of the running sum'
has "info $layer" '^  --init +string +default: normal +parameter init:'
if [[ $abi == 1.0 ]]; then
  probe_type=string  # 1.0 has no plugin_kind: a plain string option
else
  probe_type=disc    # 1.1 plugin_kind = disc, read through the 1.2 stride
fi
has "info $layer" "^  --probe-disc +$probe_type +default: \"\" +a discretization to create"
has "info $layer" '^Serves: cpu float32, cpu float64$'
[[ $(grep -c '^  --' <<<"$out") == 4 ]] || {
  echo "$out"
  fail "info $layer: expected exactly 4 options"
}
echo "ok   info $layer: 4 options, names and defaults right"

ok "info $disc" "$ssmhost" info "$disc" --plugin-path "$dir"
has "info $disc" "^$disc \(disc plugin, version 0\.1\.0, ABI $abi\)$"
has "info $disc" "^  layer suffix: '$suffix'"
has "info $disc" '^  --order +int +default: 1 +order of the scheme'
has "info $disc" '^  --label +string +default: euler +a free-form label'
has "info $disc" '^Serves: cpu complex64, cpu complex128$'
echo "ok   info $disc: 2 options, names and defaults right"

# --- validate: the layer, the discretization, s4d with it
ok "validate $layer" "$ssmhost" validate "$layer" --plugin-path "$dir"
has "validate $layer" '^PASS gradient w '
has "validate $layer" '^PASS gradient b '
has "validate $layer" '^PASS recurrent float64 '
has "validate $layer" '^PASS recurrent float32 '
validated "validate $layer"

ok "validate $disc" "$ssmhost" validate "$disc" --plugin-path "$dir"
validated "validate $disc"

ok "validate s4d$suffix" "$ssmhost" validate "s4d$suffix" --plugin-path "$dir"
has "validate s4d$suffix" "with discretization '$disc'"
validated "validate s4d$suffix (s4d 1.1 + $disc $abi)"

# --- child_create from this build's layer: a 1.1 child, then the other build's
quick=(--long-len 0 --recurrent-len 16)
ok "probe_disc zoh" "$ssmhost" validate "$layer" --plugin-path "$dir" --set probe_disc=zoh "${quick[@]}"
validated "validate $layer --set probe_disc=zoh (child 1.1)"
ok "probe_disc $other_disc" "$ssmhost" validate "$layer" --plugin-path "$dir" --plugin-path "$other_dir" \
  --set probe_disc="$other_disc" "${quick[@]}"
validated "validate $layer --set probe_disc=$other_disc (child $other_abi)"
# A child that does not exist: the host's status comes back through the plugin.
rc=0
out=$("$ssmhost" validate "$layer" --plugin-path "$dir" --set probe_disc=no_such_disc "${quick[@]}" 2>&1) || rc=$?
if [[ $rc != 1 ]] || ! grep -Eq "^FAIL create .*probe_disc 'no_such_disc'" <<<"$out"; then
  echo "$out"
  fail "probe_disc=no_such_disc: expected FAIL create with the host's message, got status $rc"
fi
echo "ok   probe_disc=no_such_disc: $(grep -m1 '^FAIL create' <<<"$out" | cut -c1-120)"

echo "OK: ABI $abi plugins load, describe and validate in this host"
