#!/usr/bin/env bash
# Collectives on a laptop: two CPU processes on 127.0.0.1 with gloo, no GPU needed.
# Every collective is verified, timed on both ranks, and gathered into one file by rank 0;
# the fit then stands in for the datasheet link figures of a training plan.
set -euo pipefail
out=${1:-collectives-cpu.json}
torchrun --standalone --nproc-per-node 2 -m recoque bench collective --device cpu --out "$out"
# --profile-anyway: the file was measured on a CPU, the plan is for H100s (every output is marked)
recoque plan train -w mistral-7b -s jean-zay-h100 -n 64 --top 1 --profile "$out" --profile-anyway
