"""Memory review (stop 106): under fp8 with selective recompute flash attention's kept output goes
with the recomputed core attention (turning flash on never costs memory there); an interleaved
schedule's last stage holds (v-1) p + 1 chunks, not one stack of layers."""
from __future__ import annotations

import pytest

from recoque.catalog import get_device_spec
from recoque.planner import memory
from recoque.planner.execution import ExecutionPlan
from recoque.planner.profile import DeviceProfile
from recoque.planner.system import load_system
from recoque.planner.train import evaluate
from recoque.planner.workload import load_model, load_training_workload


@pytest.mark.parametrize("tp, sp", [(1, False), (8, True)])
def test_flash_never_adds_memory_under_selective_recompute_in_fp8(tp, sp):
    m = load_model("llama2-70b")
    sel = [memory.activation_bytes_and_whole(m, 1, tp, sp, 1, flash, gemm_input_bytes=1.0)[0] for flash in (False, True)]
    assert float(sel[1]) <= float(sel[0])
    none = [memory.activation_bytes_and_whole(m, 1, tp, sp, 0, flash, gemm_input_bytes=1.0)[0] for flash in (False, True)]
    # without recompute the flash output is a second copy beside the projection's fp8 input: 2 bytes x o_w
    o_w = m.heads * m.value_head_dim
    scores_gone = (5.0 if m.dropout else 2.0) * m.heads * m.seq_len**2 / tp
    assert float(none[1]) - float(none[0]) == pytest.approx(2.0 * o_w * m.seq_len / tp - scores_gone, rel=1e-9)


def test_the_interleaved_last_stage_holds_its_warm_up_chunks():
    # At p = 2 the first stage's factor p (1 + (p-1)/(p v)) falls with v (2.5 at v 4, 2.125 at v 8)
    # while the last stage's ((v-1) p + 1) / v rises (1.75, 1.875) and, with the logits, binds at
    # v 8: memory grows from v 4 to v 8 (before, the last stage counted one stack and it fell).
    wl = load_training_workload("llama3.1-8b")
    sysspec = load_system("jean-zay-h100")
    prof = DeviceProfile.from_datasheet(get_device_spec(sysspec.device))
    mems = {}
    for v in (4, 8):
        plan = ExecutionPlan(tp=1, pp=2, dp=4, micro_batch=1, interleave=v, recompute="selective")
        mems[v] = evaluate(wl, sysspec.with_gpus(8), plan, prof).memory_per_gpu.value
    assert mems[8] > mems[4]
