"""The pace of a synchronous job: it waits for its slowest GPU.

Identical GPUs do not run at one speed: under one power cap each chip settles at its own clock.
Sinha et al. (SC22, arXiv 2208.11035, abstract) find "8% (max 22%) average performance variation"
within a cluster; their group's plotting script measures variation as the box-plot whisker span
over the median, 4 x IQR / median (github.com/hal-uw/gpu_variability_sc22_artifact,
plot_script/plot_aggregated.py), so 8% is a standard deviation of 8% / (4 x 1.349) = 1.5% of the
median speed for a normal spread. Per-GPU SGEMM data of the same group (392 V100 of TACC
Longhorn, May-June 2020, as stored in their later PAL artifact, github.com/hal-uw/blox-pal
aggregated_data; taken to be the SC22 measurements, not confirmed) give IQR / median 2.31%, i.e.
1.7% (IQR / 1.349), and the spread is the chip's own: about 28 repeats per GPU vary 0.3% within a
GPU against 1.9% between GPUs.

A step (or an HPL iteration) on N GPUs then takes 1 + GPU_SPEED_SPREAD x E[max of N standard
normal draws] of the median GPU's time for its GPU-bound part; one GPU waits on no one. The data's
upper tail is heavier than normal (the slowest of 256 sampled GPUs is 16% behind the median, not
5%); clusters drain such GPUs, and the estimates' ranges carry the rest.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from recoque.estimate import expected_max_z

GPU_SPEED_SPREAD = 0.017


def slowest_gpu_z(gpus: Any) -> Any:
    """E[max of N standard normals] for each GPU count in `gpus` (an array or a number)."""
    n = np.asarray(gpus, dtype=float)
    if n.ndim == 0:
        return expected_max_z(int(round(float(n))))
    if n.size and n.min() == n.max():  # a search at one GPU count: one value for every plan
        return np.full(n.shape, expected_max_z(int(round(float(n.flat[0])))))
    counts, where = np.unique(n, return_inverse=True)
    return np.array([expected_max_z(int(round(c))) for c in counts])[where].reshape(n.shape)


def slowdown(gpus: Any) -> Any:
    """Time of the GPU-bound work on `gpus` GPUs over the median GPU's: 1 + spread x E[max z]."""
    return 1.0 + GPU_SPEED_SPREAD * slowest_gpu_z(gpus)
