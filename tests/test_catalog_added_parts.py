"""Catalog parts added for published runs: the H800 (DeepSeek-V3's GPU: the H100's die and rates, NVLink held
to 400 GB/s, FP64 to 1 TFLOP/s), the MI250 (the MI250X's CDNA2 GCD with 104 CUs), the MI210 (that GCD on a PCIe card),
the MI100 (CDNA: no FP64 matrix rate),
and the A100 PCIe cards (the SXM part's compute at 250-300 W)."""
from dataclasses import replace

import pytest

from recoque.catalog import get_device_spec, match_device
from recoque.planner.execution import ExecutionPlan
from recoque.planner.system import system_from_toml
from recoque.planner.train import evaluate
from recoque.planner.validation import shipped_profile
from recoque.planner.workload import load_training_workload


def test_same_die_rates_less_link_and_fp64():
    h800, h100 = get_device_spec("h800"), get_device_spec("h100_sxm")
    assert h800.peak("bf16") == h100.peak("bf16") and h800.peak("fp8") == h100.peak("fp8")
    assert h800.scaleup_bandwidth_bytes_s == pytest.approx(400e9)
    assert h800.peak("fp64_matrix") < 0.05 * h100.peak("fp64_matrix")
    assert match_device("NVIDIA H800").key == "h800" and match_device("NVIDIA H100 80GB HBM3").key == "h100_sxm"


def _node(device, intra_gb_s):
    return system_from_toml(device, {"device": device, "gpus": 8, "gpus_per_node": 8, "intra_node_bandwidth_gb_s": intra_gb_s,
                                     "inter_node_bandwidth_gb_s": 50, "node_power_kw": 6.0, "pue": 1.2})


def test_tensor_parallel_pays_for_the_narrower_nvlink():
    wl = replace(load_training_workload("llama3.1-8b"), global_batch_seqs=8)
    plan = ExecutionPlan(tp=8, pp=1, dp=1, micro_batch=1, recompute="none", sequence_parallel=True)
    t800 = evaluate(wl, _node("h800", 200), plan, shipped_profile("h800"))
    t100 = evaluate(wl, _node("h100_sxm", 450), plan, shipped_profile("h100_sxm"))
    assert t800.breakdown["compute_s"] == pytest.approx(t100.breakdown["compute_s"], rel=1e-9)
    assert t800.breakdown["tp_comm_s"] > 2.0 * t100.breakdown["tp_comm_s"]


def test_the_mi250_is_the_mi250x_gcd_at_104_cus():
    from recoque.planner.top500 import family_of
    g, gx = get_device_spec("mi250_gcd"), get_device_spec("mi250x_gcd")
    assert g.peak("bf16") / gx.peak("bf16") == pytest.approx(104 / 110, rel=2e-3)
    assert family_of("mi250_gcd") == family_of("mi250x_gcd") == "mi250x"
    assert shipped_profile("mi250_gcd").spec.key == "mi250_gcd"
    wl = replace(load_training_workload("llama3.1-8b"), global_batch_seqs=8)
    plan = ExecutionPlan(tp=8, pp=1, dp=1, micro_batch=1, recompute="full", sequence_parallel=True)
    r = evaluate(wl, _node("mi250_gcd", 100), plan, shipped_profile("mi250_gcd"))
    rx = evaluate(wl, _node("mi250x_gcd", 100), plan, shipped_profile("mi250x_gcd"))
    assert r.breakdown["compute_s"] > rx.breakdown["compute_s"]      # fewer CUs, same fractions


def test_the_mi210_is_the_mi250_gcd_on_a_pcie_card():
    from recoque.bench import accept
    from recoque.planner.hpl import hpl_rate
    from recoque.planner.top500 import family_of
    card, gcd = get_device_spec("mi210"), get_device_spec("mi250_gcd")
    for rate in ("bf16", "fp64_vector", "fp64_matrix"):
        assert card.peak(rate) == pytest.approx(gcd.peak(rate), rel=5e-3)   # one 104-CU GCD at 1.7 GHz
    assert card.hbm_bandwidth_bytes_s == gcd.hbm_bandwidth_bytes_s and card.tdp_w == 300.0
    assert family_of("mi210") == "mi250x" and shipped_profile("mi210").spec.key == "mi210"
    assert hpl_rate(card).value == pytest.approx(22.6e12)   # TOP500 lists AI-03's Rpeak at 22.95 TF per card: vector
    floors = {(f.benchmark, f.op): f for f in accept.load_policy().floors if f.device == "mi210"}
    assert floors[("stream", "copy")].minimum == pytest.approx(1230.0)           # AMD: 1,230,000 MB/s
    assert floors[("gemm", "matmul")].minimum == pytest.approx(28.0)            # rocBLAS FP32 28,000 GFLOPS
    ar = floors[("collective", "all_reduce")]
    assert ar.minimum == pytest.approx(30.0) and ar.world_size == 4             # -g 4 (a single-socket quad)


def test_the_mi100_has_no_fp64_matrix_rate_and_bf16_at_half_fp16():
    from recoque.bench import accept
    from recoque.planner.hpl import hpl_rate
    card = get_device_spec("mi100")
    assert card.peak("fp64_matrix") is None and hpl_rate(card).value == pytest.approx(11.5e12)
    assert card.peak("bf16") == pytest.approx(card.peak("fp16") / 2, rel=1e-3)
    floors = {(f.benchmark, f.op): f for f in accept.load_policy().floors if f.device == "mi100"}
    assert floors[("stream", "triad")].minimum == pytest.approx(910.0)            # AMD: 910,000 MB/s
    ar = floors[("collective", "all_reduce")]
    assert ar.minimum == pytest.approx(72.0) and ar.world_size == 4


def test_the_a100_variants_share_compute_and_differ_in_memory_and_power():
    from recoque.planner.top500 import family_of
    sxm = get_device_spec("a100_sxm_80gb")
    for key, hbm_tb_s, tdp_w in (("a100_sxm_40gb", 1.555, 400.0), ("a100_pcie_40gb", 1.555, 250.0),
                                 ("a100_pcie_80gb", 1.935, 300.0)):
        part = get_device_spec(key)
        assert all(part.peak(r) == sxm.peak(r) for r in ("bf16", "tf32", "fp64_matrix")), key
        assert part.hbm_bandwidth_bytes_s == pytest.approx(hbm_tb_s * 1e12) and part.tdp_w == tdp_w, key
        assert family_of(key) == "a100", key


def test_the_p100_and_the_32_gb_v100_join_the_volta_hpl_family_at_their_vector_rate():
    from recoque.planner import hpl
    from recoque.planner.hpcg import memory_family
    from recoque.planner.top500 import family_of
    pcie, sxm2 = get_device_spec("p100_pcie"), get_device_spec("p100_sxm2")
    assert pcie.peak("fp64_matrix") is None and hpl.hpl_rate(pcie).value == pytest.approx(4.7e12)
    assert hpl.hpl_rate(sxm2).value == pytest.approx(5.3e12) and sxm2.tdp_w == 300.0 and pcie.tdp_w == 250.0
    assert pcie.peak("fp64_vector") == pytest.approx(pcie.peak("fp32") / 2, rel=0.02)      # Pascal: FP64 at 1/2
    v32, v16 = get_device_spec("v100_sxm2_32gb"), get_device_spec("v100_sxm2")
    assert hpl.hpl_rate(v32).value == hpl.hpl_rate(v16).value and v32.hbm_bytes == 2 * v16.hbm_bytes
    assert {family_of(k) for k in ("p100_pcie", "p100_sxm2", "v100_sxm2_32gb")} == {"volta"}
    # Piz Daint is counted at the PCIe card's vector rate: 27,154.30 TF Rpeak / 5,704 GPUs = 4.76 TF
    assert 27154.30e12 / 5704 == pytest.approx(hpl.hpl_rate(pcie).value, rel=0.015)
    # within the family only memory per GPU moves the efficiency: 2x the memory, 2^0.2 the efficiency
    e32, e16 = hpl.hpl_efficiency("v100_sxm2_32gb"), hpl.hpl_efficiency("v100_sxm2")
    assert e32.value / e16.value == pytest.approx(2 ** hpl.memory_exponent(), rel=1e-9)
    assert memory_family("v100_sxm2_32gb") == "volta" and memory_family("p100_pcie") == "pascal"
    for key in ("p100_pcie", "p100_sxm2", "v100_sxm2_32gb"):       # held for the HPL model, never detected
        assert getattr(match_device(get_device_spec(key).name), "key", None) != key


def test_the_rtx_pro_6000_is_a_pcie_gddr7_card_at_dense_rates():
    from recoque.planner.system import load_system
    card = get_device_spec("rtx_pro_6000")
    assert card.peak("fp4") == pytest.approx(2 * card.peak("fp8")) and card.peak("fp8") == pytest.approx(2 * card.peak("bf16"))
    assert card.peak("bf16") == pytest.approx(503.8e12) and card.hbm_bandwidth_bytes_s == pytest.approx(1.792e12)
    assert card.scaleup_bandwidth_bytes_s is None                 # no NVLink: the system file states PCIe
    assert match_device("NVIDIA RTX PRO 6000 Blackwell Server Edition").key == "rtx_pro_6000"
    assert match_device("NVIDIA RTX 6000 Ada Generation") is None  # the Ada card is another part
    node = load_system("node-8x-rtx-pro-6000")
    assert node.intra_node_bandwidth_bytes_s <= 64e9               # PCIe Gen5 x16, one direction


def test_the_l4_and_the_h20_are_named_apart_from_their_larger_siblings():
    """'NVIDIA L4' is a prefix of 'NVIDIA L40' and 'H20' of 'H200': each match is vetoed where it
    would take the sibling."""
    assert match_device("NVIDIA L4").key == "l4" and match_device("NVIDIA L40S").key == "l40s"
    assert match_device("NVIDIA L40") is None
    assert match_device("NVIDIA H20").key == "h20" and match_device("NVIDIA H200").key == "h200"
    assert match_device("NVIDIA GH200 480GB").key == "gh200"


def test_the_h20_trades_compute_for_memory_against_the_h100():
    """The H20 serves memory-bound decode faster than an H100 (4.0 vs 3.35 TB/s) at 15% of its
    dense tensor rate; the L4 is the 72 W card at 300 GB/s."""
    h20, h100, l4 = get_device_spec("h20"), get_device_spec("h100_sxm"), get_device_spec("l4")
    assert h20.peak("bf16") == pytest.approx(0.15 * h100.peak("bf16"), rel=0.01)
    assert h20.hbm_bandwidth_bytes_s > h100.hbm_bandwidth_bytes_s and h20.hbm_bytes > h100.hbm_bytes
    assert l4.peak("fp8") == pytest.approx(2.0 * l4.peak("bf16")) and l4.hbm_bandwidth_bytes_s == pytest.approx(300e9)
