#!/usr/bin/env bash
# plugin_exports_only_entry: every plugin library of the build exports one
# symbol, ssm_plugin_entry (the version script of ssm_add_plugin). Anything
# else exported can clash with the host or another plugin.
#   exports_only_entry.sh PLUGIN_DIR
set -euo pipefail
source "$(dirname "$0")/common.sh"
dir=$1
need readelf "list the dynamic symbols of the plugins"

shopt -s nullglob
plugins=("$dir"/*.so)
((${#plugins[@]} > 0)) || fail "no plugin libraries in $dir (build the project first)"
bad=0
for so in "${plugins[@]}"; do
  # Columns: Num: Value Size Type Bind Vis Ndx Name. Defined (Ndx is not UND)
  # global, weak or unique symbols are what the library exports.
  exported=$(readelf --dyn-syms --wide "$so" |
    awk '$1 ~ /^[0-9]+:$/ && $7 != "UND" && ($5 == "GLOBAL" || $5 == "WEAK" || $5 == "UNIQUE") {print $8}' |
    sed 's/@.*//' | sort -u)
  if [[ $exported == ssm_plugin_entry ]]; then
    echo "ok   $(basename "$so")"
  else
    echo "FAIL $(basename "$so") exports:" $exported
    bad=1
  fi
done
((bad == 0)) || fail "plugins must export ssm_plugin_entry and nothing else (build them with ssm_add_plugin)"
echo "OK: ${#plugins[@]} plugins export only ssm_plugin_entry"
