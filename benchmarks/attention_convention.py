"""Measured attention in the training model's convention, per SDPA backend, from a results file.

The training model times attention as full (non-causal) FLOPs, 4*b*h*s^2*d forward and twice that
backward, at `attention_efficiency` x the bf16 peak (planner/profile.py). `recoque bench attention`
probes every SDPA backend on each shape and keeps each probe's median in the record's tags, so one
run gives, per backend, the efficiency a forward + backward pass reaches in that convention:

    efficiency = 3 x full forward FLOPs / (t_forward + t_backward) / peak

    python benchmarks/attention_convention.py [results.json]   (default seeds/measured/h200.json)

Exit 0 always (it reads; it asserts nothing).
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from recoque.bench.schema import load_results, sdpa_backend_times
from recoque.planner.profile import attention_full_work

DEFAULT = Path(__file__).resolve().parents[1] / "seeds" / "measured" / "h200.json"


def efficiencies(doc, dtype: str = "bf16") -> dict[tuple, dict[str, float]]:
    """{(seq, head_dim, causal, heads_q, heads_kv, batch): {backend: efficiency}} for shapes probed in both directions."""
    times: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    full: dict[tuple, float] = {}
    peak = None
    for r in doc.results:
        if r.benchmark != "attention" or r.dtype != dtype or r.peak is None or r.unit != "TFLOP/s":
            continue
        p = r.params
        key = (p["seq_q"], p["head_dim"], p["causal"], p["heads_q"], p["heads_kv"], p["batch"])
        full[key] = attention_full_work(p)
        peak = r.peak * 1e12  # records keep the peak in their display unit
        for backend, t in sdpa_backend_times(r.tags).items():
            if t == t and t > 0:  # nan: not probed
                times[key][backend].setdefault(p["direction"], t)
    out = {}
    for key, per in times.items():
        eff = {b: 3.0 * full[key] / (d["fwd"] + d["bwd"]) / peak for b, d in per.items() if {"fwd", "bwd"} <= set(d)}
        if eff:
            out[key] = eff
    return out


def main(argv: list[str]) -> int:
    path = argv[0] if argv else str(DEFAULT)
    doc = load_results(path)
    rows = efficiencies(doc)
    backends = sorted({b for e in rows.values() for b in e})
    print(f"{path}: {doc.environment.get('gpu_name') or doc.environment.get('device_name')}, torch "
          f"{doc.environment.get('torch_version')}; bf16 attention, forward + backward, full-FLOP convention")
    print(f"{'seq':>6} {'d':>4} {'causal':>6} {'heads':>6} {'batch':>5} " + " ".join(f"{b:>20}" for b in backends))
    for key in sorted(rows):
        seq, d, causal, hq, hkv, batch = key
        cells = " ".join(f"{rows[key][b]:>20.3f}" if b in rows[key] else f"{'-':>20}" for b in backends)
        print(f"{seq:>6} {d:>4} {str(causal):>6} {f'{hq}/{hkv}':>6} {batch:>5} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
