#!/usr/bin/env bash
# Generation speed of a char_lm run: characters per second in recurrent step
# mode (`ssmhost generate`, the default) at context 100 and 10,000, against
# re-running the full forward pass over the context for every new character
# (`--mode reconvolve`), all in one invocation.
#
#   bash bench/generate.sh RUN.h5 [THREADS]      (default 1 thread)
#
# The prompts are text the model wrote itself (so every character is in its
# vocabulary). Writes bench/results/generate-<UTC time>.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: bash bench/generate.sh RUN.h5 [THREADS]}
threads=${2:-1}
ssmhost=${SSMHOST:-build/host/ssmhost}
mkdir -p bench/results
out=bench/results/generate-$(date -u +%Y%m%dT%H%M%SZ).md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Prompts: 10,000 characters sampled from the model (its trailing newline
# dropped), and their first 100.
"$ssmhost" generate "$run" --prompt "Q" --length 9999 --seed 7 --threads "$threads" > "$tmp/p10000.raw"
head -c -1 "$tmp/p10000.raw" > "$tmp/p10000.txt"
/usr/bin/python3 -c "import sys; t=open(sys.argv[1],encoding='utf-8').read(); open(sys.argv[2],'w',encoding='utf-8').write(t[:100]); assert len(t)==10000, len(t)" \
  "$tmp/p10000.txt" "$tmp/p100.txt"

load_before=$(cut -d' ' -f1 /proc/loadavg)
measure() {  # mode context length
  "$ssmhost" generate "$run" --prompt-file "$tmp/p$2.txt" --mode "$1" --length "$3" --seed 1 --threads "$threads" \
    --no-echo --time 2>&1 >/dev/null | grep '^ssmhost generate:'
}
{
  echo "mode context generated seconds tokens_per_s prompt_s"
  for ctx in 100 10000; do
    for mode in step reconvolve; do
      n=2000
      [ "$mode" = reconvolve ] && n=$([ "$ctx" = 100 ] && echo 200 || echo 10)
      line=$(measure "$mode" "$ctx" "$n")
      # "... prompt P tokens in X s (...), generated N tokens in Y s (R tokens/s)"
      echo "$line" | sed -E 's/.*mode ([a-z]+).*prompt ([0-9]+) tokens in ([0-9.]+) s.*generated ([0-9]+) tokens in ([0-9.]+) s \(([0-9.]+) tokens\/s\).*/\1 \2 \4 \5 \6 \3/'
    done
  done
} > "$tmp/rows.txt"
load_after=$(cut -d' ' -f1 /proc/loadavg)

{
  echo "# Generation speed: $run"
  echo
  echo "$("$ssmhost" report "$run" --columns layer,d_model,n_layers,d_state,best --format markdown --table 2>/dev/null | tail -n +1)"
  echo
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), threads $threads," \
       "load average $load_before before, $load_after after. Command: \`bash bench/generate.sh $run $threads\`."
  echo
  echo "| mode | context (prompt tokens) | tokens generated | seconds | tokens/s | prompt seconds |"
  echo "|---|---:|---:|---:|---:|---:|"
  tail -n +2 "$tmp/rows.txt" | while read -r mode ctx n s r p; do
    echo "| $mode | $ctx | $n | $s | $r | $p |"
  done
} > "$out"
cat "$out"
