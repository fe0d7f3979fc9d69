#!/usr/bin/env bash
# Set up recoque in a virtual environment (.venv, or $RECOQUE_VENV) and install it editable.
#
# torch: if the environment already has torch (a ROCm or CUDA build you installed, or the one in
# your container with RECOQUE_SYSTEM_SITE=1), it is kept. Otherwise the CPU build of torch 2.13.0
# is installed explicitly, because an open `torch` requirement pulls several GB of CUDA packages:
# from PyTorch's CPU index (RECOQUE_TORCH_INDEX, download.pytorch.org/whl/cpu) when that host
# resolves, since PyPI's x86_64 Linux wheel of the same version is the CUDA one; on an offline
# machine, from the indexes pip is configured with (a local wheel house). GPU nodes: see README.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${RECOQUE_VENV:-.venv}
TORCH_CPU_VERSION=${RECOQUE_TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=${RECOQUE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}

if [ ! -x "$VENV/bin/python" ]; then
  if [ "${RECOQUE_SYSTEM_SITE:-0}" = "1" ]; then
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true

install_local_torch() {
  # the configured indexes (a local wheel house): the +cpu build by name, so that a PyPI-only machine
  # fails here instead of fetching the CUDA wheel; a wheel house whose CPU wheel has no +cpu tag after
  echo "setup: installing torch==$TORCH_CPU_VERSION+cpu from pip's configured indexes"
  "$VPY" -m pip install -q "torch==$TORCH_CPU_VERSION+cpu" && return 0
  echo "setup: no torch==$TORCH_CPU_VERSION+cpu there; trying torch==$TORCH_CPU_VERSION (on a PyPI-only machine that is the CUDA build: set RECOQUE_TORCH_INDEX or install torch first)" >&2
  "$VPY" -m pip install -q "torch==$TORCH_CPU_VERSION"
}

if "$VPY" -c "import torch" >/dev/null 2>&1; then
  echo "setup: keeping torch $("$VPY" -c 'import torch; print(torch.__version__)')"
else
  host=$(printf '%s' "$TORCH_CPU_INDEX" | sed -E 's#^[a-z]+://([^/:]+).*#\1#')
  if "$VPY" -c "import socket, sys; socket.setdefaulttimeout(3); socket.getaddrinfo(sys.argv[1], 443)" "$host" >/dev/null 2>&1; then
    echo "setup: no torch found; installing the CPU build torch==$TORCH_CPU_VERSION from $TORCH_CPU_INDEX"
    # a host that resolves may still be unreachable (HTTPS blocked): then the local route
    "$VPY" -m pip install -q --timeout 20 --retries 1 "torch==$TORCH_CPU_VERSION" --index-url "$TORCH_CPU_INDEX" \
      || { echo "setup: $TORCH_CPU_INDEX failed" >&2; install_local_torch; }
  else
    echo "setup: no torch found; $host does not resolve"
    install_local_torch
  fi
fi
"$VPY" -m pip install -q -e ".[bench,report,test]"
echo "setup: done ($VENV). Run: $VENV/bin/recoque --help"
