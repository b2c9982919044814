#!/bin/bash
# A sweep as a Slurm job array: one array task per configuration, all writing
# their run logs to one directory on a shared file system (docs/analysis.md).
#
#   SWEEP=(--layer s4d,s4 --disc zoh,bilinear --seq-len 256,1024 --task selective_copy --steps 5000)
#   sbatch --array=0-$(( $(ssmhost sweep "${SWEEP[@]}" --count) - 1 )) docs/examples/sweep-slurm.sh
#   ...
#   ssmhost report sweeps/study --sort -best
#
# A task stopped at its time limit (or preempted) gets SIGTERM: the run
# finishes its step, writes its checkpoint and closes its log as
# 'interrupted'. Requeued, or submitted again, the same --index resumes it;
# finished configurations are skipped.
#SBATCH --job-name=ssm-sweep
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%A_%a.out
#SBATCH --signal=TERM@120
#SBATCH --requeue
set -euo pipefail
SWEEP=(--layer s4d,s4 --disc zoh,bilinear --seq-len 256,1024 --task selective_copy --steps 5000)
srun ssmhost sweep "${SWEEP[@]}" --threads "$SLURM_CPUS_PER_TASK" --out sweeps/study --index "$SLURM_ARRAY_TASK_ID"
