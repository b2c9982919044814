#!/usr/bin/env bash
# Trials behind the figures of issue 11 (not run by ctest; needs python3-h5py):
#
#   bash tests/safety_trials.sh kill [N]   N runs (default 20) each killed with kill -9 one to three
#                                           times at random moments, resumed with `--resume X.ckpt`
#                                           until done; counts the logs identical to an uninterrupted
#                                           run's (step, epoch, loss, metric, lr, grad_norm; evaluations)
#   bash tests/safety_trials.sh faults [N]  N runs (default 30) with an injected ENOSPC or EIO
#                                           (LD_PRELOAD build/tests/libssm_faultfs.so) at log creation,
#                                           at a flush after the k-th checkpoint or at the k-th
#                                           checkpoint; each must end with exit 1 and a message, a
#                                           readable log and an intact checkpoint, and --resume must
#                                           then finish it identical to the uninterrupted run
#   bash tests/safety_trials.sh disk        runs on small tmpfs file systems (needs `unshare -rm` or
#                                           root) that fill up at log creation, at a flush and at a
#                                           checkpoint: exit status, message, what is left, resume
#
# Uses build/host/ssmhost; works in a temporary folder.
set -uo pipefail
cd "$(dirname "$0")/.."
SSMHOST="$PWD/build/host/ssmhost"
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/ssm_trials_XXXXXX)
trap 'rm -rf "$WORK"' EXIT
TINY="--layer s4d --task copy --copy-len 8 --n-tokens 2 --vocab 5 --eval-size 64 --d-model 16 --n-layers 1
      --d-state 8 --batch-size 8 --quiet --threads 1 --dropout 0.1 --steps 12000 --eval-every 1000"

same_run() {  # same_run A.h5 B.h5: exit 0 when the columns are bit-identical
  "$PY" - "$1" "$2" <<'EOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r", libver="latest", swmr=True) for p in sys.argv[1:3])
for g, cols in (("train", "step epoch loss metric lr grad_norm"), ("eval", "step epoch loss metric")):
    for c in cols.split():
        x, y = a[g][c][:], b[g][c][:]
        if x.shape != y.shape or x.tobytes() != y.tobytes():
            print(f"  differs: /{g}/{c} ({x.shape[0]} vs {y.shape[0]} rows)"); sys.exit(1)
EOF
}

kill_trials() {
  local n=${1:-20} identical=0 kills=0
  cd "$WORK"
  "$SSMHOST" $TINY --log ref.h5 2>/dev/null || exit 1
  for t in $(seq 1 "$n"); do
    rm -f run.h5*
    local args="$TINY --checkpoint-every $((200 + RANDOM % 800)) --log run.h5" rounds=$((1 + RANDOM % 3)) status=""
    local done_=0 hit=0
    for r in $(seq 1 "$rounds"); do
      "$SSMHOST" $args 2>/dev/null & local pid=$!
      sleep "0.$((RANDOM % 10))$((RANDOM % 10))"; sleep "$((RANDOM % 2))"
      kill -9 "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null; local st=$?
      [ "$st" = 137 ] && hit=$((hit + 1))
      [ "$st" = 0 ] && { done_=1; break; }  # it finished before the kill
      # Killed before its first checkpoint: it starts again (over its log).
      if [ -f run.h5.ckpt ]; then args="--resume run.h5.ckpt --quiet"; else args="$TINY --checkpoint-every 500 --log run.h5 --overwrite"; fi
    done
    kills=$((kills + hit))
    # Then to the end (a run killed before its first checkpoint starts again).
    if [ "$done_" = 0 ]; then
      if [ -f run.h5.ckpt ]; then "$SSMHOST" --resume run.h5.ckpt --quiet 2>/dev/null
      else "$SSMHOST" $TINY --log run.h5 --overwrite 2>/dev/null; fi
    fi
    if same_run ref.h5 run.h5; then identical=$((identical + 1)); status=identical; else status=DIFFERENT; fi
    echo "trial $t: killed $hit time(s), $status ($("$SSMHOST" report run.h5 2>/dev/null | grep -c '^event: ') resume events)"
  done
  echo "kill -9 trials: $n runs, $kills kills of a running training, $identical ended in one log identical to the uninterrupted run's"
}

disk_trials() {
  cat >"$WORK/disk.sh" <<EOF
set -u
mount -t tmpfs -o size=\$1 tmpfs "$WORK/m" || exit 99
cd "$WORK/m"
"$SSMHOST" --layer s4d --task copy --copy-len 8 --n-tokens 2 --vocab 5 --eval-size 64 --d-model \$2 --n-layers 2 \\
  --d-state 32 --batch-size 8 --quiet --threads 1 --steps 1500 --eval-every 250 --checkpoint-every 250 --log run.h5
echo "  exit status \$?"
ls run.h5* 2>/dev/null | tr '\n' ' '; echo
"$SSMHOST" report run.h5 2>&1 | grep -E '^status|steps logged|error' | sed 's/^/  /'
step=\$("$PY" -c "import h5py; print(h5py.File('run.h5.ckpt','r').attrs['step'])" 2>/dev/null)
echo "  checkpoint step: \${step:-none}"
EOF
  mkdir -p "$WORK/m"
  local clean=0 total=0
  for spec in "64k 16" "200k 16" "1M 16" "5M 128" "5500k 128" "8M 128"; do
    set -- $spec
    echo "== tmpfs of $1, --d-model $2"
    out=$(unshare -rm bash "$WORK/disk.sh" "$1" "$2" 2>&1)
    echo "$out"
    total=$((total + 1))
    code=$(echo "$out" | sed -n 's/.*exit status \([0-9]*\).*/\1/p')
    if [ -n "$code" ] && [ "$code" -lt 128 ] && ! echo "$out" | grep -q "cannot open the file"; then clean=$((clean + 1)); fi
  done
  echo "full-disk trials: $total, ended cleanly (exit < 128, log readable): $clean"
}

fault_trials() {
  local n=${1:-30} clean=0
  local faultfs="$PWD/build/tests/libssm_faultfs.so"
  cd "$WORK"
  local args="--layer s4d --task copy --copy-len 8 --n-tokens 2 --vocab 5 --eval-size 64 --d-model 16 --n-layers 1
              --d-state 8 --batch-size 8 --quiet --threads 1 --steps 600 --eval-every 50 --checkpoint-every 100"
  "$SSMHOST" $args --log ref.h5 2>/dev/null || exit 1
  for t in $(seq 1 "$n"); do
    rm -f f.h5* err
    local k=$((1 + RANDOM % 4)) errno=ENOSPC where env
    [ $((RANDOM % 3)) = 0 ] && errno=EIO
    case $((RANDOM % 3)) in
      0) where="log creation"; env="SSM_FAULT_FILE=f.h5.tmp-*" ;;
      1) where="a flush after checkpoint $k"; env="SSM_FAULT_FILE=f.h5 SSM_FAULT_ARM_ON=f.h5.ckpt SSM_FAULT_ARM_AFTER=$k" ;;
      2) where="checkpoint $((k + 1))"; env="SSM_FAULT_FILE=f.h5.ckpt.tmp-* SSM_FAULT_SKIP_FILES=$k" ;;
    esac
    env LD_PRELOAD="$faultfs" SSM_FAULT_ERRNO=$errno $env "$SSMHOST" $args --log f.h5 2>err
    local st=$? ok=1 why=""
    [ "$st" = 1 ] || { ok=0; why="exit status $st"; }
    grep -q "ssmhost: error: .*\(No space left on device\|Input/output error\)" err || { ok=0; why="$why, no clear message"; }
    ls f.h5.tmp-* f.h5.ckpt.tmp-* >/dev/null 2>&1 && { ok=0; why="$why, temporary file left"; }
    if [ -f f.h5.ckpt ]; then
      "$SSMHOST" report f.h5 >/dev/null 2>&1 || { ok=0; why="$why, log unreadable"; }
      "$SSMHOST" --resume f.h5.ckpt --quiet 2>>err || { ok=0; why="$why, resume failed"; }
      same_run ref.h5 f.h5 >/dev/null || { ok=0; why="$why, resumed log differs"; }
    elif [ "$where" = "log creation" ]; then
      [ -e f.h5 ] && { ok=0; why="$why, a log was left"; }
    fi
    [ "$ok" = 1 ] && clean=$((clean + 1))
    echo "trial $t: $errno at $where: exit $st, $([ "$ok" = 1 ] && echo "clean" || echo "NOT CLEAN:$why")"
  done
  echo "injected I/O faults: $n, ended cleanly (exit 1, message, no temporary file, intact checkpoint, resumed identical): $clean"
}

case "${1:-kill}" in
  kill) kill_trials "${2:-20}" ;;
  disk) disk_trials ;;
  faults) fault_trials "${2:-30}" ;;
  *) echo "usage: $0 kill [N] | faults [N] | disk" >&2; exit 2 ;;
esac
