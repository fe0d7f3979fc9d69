#!/usr/bin/env bash
# One GPU node, one process per GPU (rank i on GPU LOCAL_RANK=i; RCCL on ROCm, NCCL on CUDA).
#   bash examples/torchrun-node.sh            # this node only
#   NNODES=2 NODE_RANK=0 HEAD=node01 bash examples/torchrun-node.sh   # on each of 2 nodes
set -euo pipefail
gpus=${GPUS:-$(python -c 'import torch; print(torch.cuda.device_count())')}
if [[ -n "${NNODES:-}" ]]; then
  launch=(torchrun --nnodes "$NNODES" --node-rank "$NODE_RANK" --nproc-per-node "$gpus"
          --rdzv-backend c10d --rdzv-endpoint "$HEAD:29400" --rdzv-id recoque-collectives)
else
  launch=(torchrun --standalone --nproc-per-node "$gpus")
fi
# Collectives over the whole world: sizes 8 B .. 8 GiB, fp32 and bf16, in and out of place,
# plus send/recv inside a node and across nodes; results from every rank in one file.
"${launch[@]}" -m recoque bench collective --out collectives.json
# Node-wide: GEMM and STREAM on every GPU at once (power and thermal limits); per-GPU spread kept.
"${launch[@]}" -m recoque bench gemm --quick --out nodewide-gemm.json
"${launch[@]}" -m recoque bench stream --quick --out nodewide-stream.json
