#!/usr/bin/env bash
# Set up recoque in a virtual environment (.venv, or $RECOQUE_VENV) and install it editable.
#
# torch: if the environment already has torch (a ROCm or CUDA build you installed, or the one in
# your container with RECOQUE_SYSTEM_SITE=1), it is kept. Otherwise the CPU build is installed
# explicitly (pip install torch==2.13.0), because an open `torch` requirement pulls several GB of
# CUDA packages. GPU nodes: see README "GPU nodes".
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${RECOQUE_VENV:-.venv}
TORCH_CPU_VERSION=${RECOQUE_TORCH_VERSION:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  if [ "${RECOQUE_SYSTEM_SITE:-0}" = "1" ]; then
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true

if "$VPY" -c "import torch" >/dev/null 2>&1; then
  echo "setup: keeping torch $("$VPY" -c 'import torch; print(torch.__version__)')"
else
  echo "setup: no torch found; installing the CPU build torch==$TORCH_CPU_VERSION"
  "$VPY" -m pip install -q "torch==$TORCH_CPU_VERSION"
fi
"$VPY" -m pip install -q -e ".[bench,report,test]"
echo "setup: done ($VENV). Run: $VENV/bin/recoque --help"
