"""GPU-path decisions tested on the CPU with fakes: SDPA backend by speed, tf32 confirmation,
minimum torch versions, headline confirmation, grouped warnings, on-device GEMM sampling."""
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recoque.bench import attention, features, headline, noise  # noqa: E402
from recoque.bench.base import Unsupported  # noqa: E402
from recoque.bench.gemm import GemmCase  # noqa: E402
from recoque.bench.runner import run_one  # noqa: E402
from recoque.bench.schema import Record, sdpa_backend_times  # noqa: E402
from recoque.bench.timing import TimingPolicy  # noqa: E402
from recoque.kernels import gemm as KG  # noqa: E402

CPU = types.SimpleNamespace(kind="cpu", torch_device="cpu", llc_bytes=None, fp8_format=None,
                            peak=lambda d: (None, None), peak_bandwidth=lambda: (None, None))
TINY = TimingPolicy(warmup_s=0.0, budget_s=0.0, min_samples=3, max_samples=3)


def rec(dtype, m, times, tags=("sweep",), flops=2 * 10**12):
    return Record("gemm", "matmul", dtype, {"m": m, "n": m, "k": m}, tuple(times), "TFLOP/s",
                  flop_count=flops, tags=tuple(tags))


# --------------------------------------------------------------------------- attention backends

def test_fastest_backend_wins_and_the_others_are_kept():
    fake = {"FLASH_ATTENTION": 2.0e-3, "CUDNN_ATTENTION": 1.2e-3, "EFFICIENT_ATTENTION": 1.5e-3}
    best, times = attention.choose_fastest(list(fake), fake.__getitem__)
    assert best == "CUDNN_ATTENTION"  # not the first accepted one
    assert times == fake
    assert sdpa_backend_times(attention.backend_tags(times)) == pytest.approx(fake)


def test_single_backend_is_not_probed():
    def never(name):
        raise AssertionError("a lone backend needs no probe")

    best, times = attention.choose_fastest(["MATH"], never)
    assert best == "MATH" and list(times) == ["MATH"]


def test_attention_case_measures_the_fastest_accepted_backend(monkeypatch):
    probe = {"FLASH_ATTENTION": 5e-3, "MATH": 1e-3}  # fake medians: MATH faster here
    monkeypatch.setattr(attention.AttentionCase, "_probe", lambda self, name, device: probe[name])
    case = attention.AttentionCase(1, 2, 2, 64, 16, False, "fwd", "fp32")
    r, skip, _ = run_one(case, CPU, TINY, 0, telemetry=False)
    assert skip is None and r.backend == "MATH"
    kept = sdpa_backend_times(r.tags)
    assert set(kept) == {"FLASH_ATTENTION", "MATH"}  # CPU torch accepts these two
    assert kept["FLASH_ATTENTION"] == pytest.approx(5e-3)


# --------------------------------------------------------------------------- minimum torch versions

@pytest.fixture
def old_torch(monkeypatch):
    def use(version):
        monkeypatch.setattr(features, "torch_version", lambda: version)
        features.clear_cache()
    yield use
    features.clear_cache()


def test_versions_parse_and_compare(old_torch):
    assert features.parse_version("2.5.1+rocm6.2") == (2, 5)
    assert features.parse_version("garbage") == (0, 0)
    old_torch("2.4.1")
    assert "torch >= 2.5" in features.check("sdpa_enable_gqa")
    assert features.check("scaled_mm_out") is None
    old_torch("2.5.0a0+git")
    assert features.check("sdpa_enable_gqa") is None


def test_gqa_case_is_skipped_with_the_reason_on_old_torch(old_torch, monkeypatch):
    old_torch("2.4.0")
    gqa = attention.AttentionCase(1, 4, 2, 64, 16, False, "fwd", "fp32")
    r, skip, _ = run_one(gqa, CPU, TINY, 0, telemetry=False)
    assert r is None and skip.reason.startswith("unsupported:") and "torch >= 2.5" in skip.reason
    mha = attention.AttentionCase(1, 2, 2, 64, 16, False, "fwd", "fp32")  # MHA still runs
    monkeypatch.setattr(attention.AttentionCase, "_probe", lambda self, name, device: 1e-3)
    r, skip, _ = run_one(mha, CPU, TINY, 0, telemetry=False)
    assert skip is None and r is not None


def test_fp8_needs_scaled_mm_out_version(old_torch):
    old_torch("2.3.1")
    gpu = types.SimpleNamespace(kind="cuda", torch_device="cuda:0", fp8_format="e4m3fn",
                                peak=lambda d: (1e15, "x"))
    with pytest.raises(Unsupported, match="torch >= 2.4"):
        GemmCase(256, 256, 256, "fp8")._check_supported(gpu)
    assert "init_process_group" in features.FEATURES["init_process_group_device_id"].what
    assert features.check("init_process_group_device_id") is None  # 2.3 has it
    old_torch("2.2.2")
    with pytest.raises(Unsupported, match="torch >= 2.3"):
        features.require("init_process_group_device_id")


# --------------------------------------------------------------------------- tf32

def test_tf32_confirmation_logic():
    assert headline.tf32_confirmed(300.0, 100.0)
    assert not headline.tf32_confirmed(103.0, 100.0)  # within 5%: fp32 measured under a tf32 label
    tf32_same = [rec("fp32", 1024, [1.0] * 5), rec("tf32", 1024, [0.98] * 5)]
    marked, ratio = headline.mark_tf32(tf32_same)
    assert ratio == pytest.approx(1 / 0.98)
    assert headline.TF32_UNCONFIRMED_TAG in marked[1].tags and headline.TF32_UNCONFIRMED_TAG not in marked[0].tags
    assert [w.code for w in noise.check_tf32(ratio)] == ["tf32_unconfirmed"]
    fast = [rec("fp32", 1024, [1.0] * 5), rec("tf32", 1024, [0.3] * 5)]
    marked, ratio = headline.mark_tf32(fast)
    assert all(headline.TF32_UNCONFIRMED_TAG not in r.tags for r in marked) and noise.check_tf32(ratio) == []
    assert headline.mark_tf32([rec("fp32", 64, [1.0])]) == ([rec("fp32", 64, [1.0])], None)


def test_tf32_settings_are_recorded(monkeypatch):
    monkeypatch.setenv("HIPBLASLT_ALLOW_TF32", "x")  # registered, so the test's own setting is undone afterwards
    monkeypatch.delenv("HIPBLASLT_ALLOW_TF32")
    assert KG.rocm_tf32_env() == {"HIPBLASLT_ALLOW_TF32": "1"}
    assert KG.rocm_tf32_env() == {"HIPBLASLT_ALLOW_TF32": "1 (user)"}  # second call: already set
    try:
        assert KG.set_tf32(True) == {"allow_tf32": "true", "float32_matmul_precision": "high"}
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        assert KG.set_tf32(False)["float32_matmul_precision"] == "highest"


# --------------------------------------------------------------------------- headline

def test_noisy_case_cannot_be_the_headline():
    noisy_fast = rec("bf16", 4096, [0.5, 1.5, 0.5, 1.5, 0.5])  # fastest median, CoV ~ 50%
    steady = rec("bf16", 2048, [1.0, 1.01, 0.99, 1.0, 1.0])
    assert headline.candidate([noisy_fast, steady], "bf16") is steady
    assert headline.headline([noisy_fast, steady]) is steady
    confirmed = rec("bf16", 2048, [1.1] * 20, tags=("sweep", "headline", "confirmation"))
    assert headline.headline([noisy_fast, steady, confirmed]) is confirmed  # its median is the figure
    assert headline.candidate([noisy_fast, steady, confirmed], "bf16") is steady  # confirmations are not re-confirmed
    only_noisy = [rec("bf16", 1024, [0.4, 1.6, 0.4, 1.6]), rec("bf16", 512, [0.9, 1.1, 0.9, 1.1])]
    assert headline.candidate(only_noisy, "bf16") is only_noisy[1]  # the steadiest of the fastest
    assert headline.headline(only_noisy) is None


def test_suite_confirms_the_best_stable_shape(monkeypatch):
    from recoque.bench import suite
    from recoque.bench.runner import RunOutcome

    out = RunOutcome(records=[rec("fp64", 512, [1.0] * 5), rec("fp64", 1024, [0.5] * 5)])
    ran = []

    def fake_run(cases, policy=None):
        ran.append((cases, policy))
        out.records.append(rec("fp64", cases[0].params["m"], [0.55, 0.6, 0.5, 0.55] * 3, tags=cases[0].tags))
        return True

    assert suite._confirm(out, list(out.records), "gemm", suite.QUICK, fake_run)[0]
    assert len(ran) == headline.CONFIRM_ROUNDS  # one longer run per round
    cases, policy = ran[0]
    assert cases[0].params["m"] == 1024 and "headline" in cases[0].tags
    assert policy.budget_s == pytest.approx(suite.QUICK.budget_s * headline.CONFIRM_BUDGET_FACTOR / headline.CONFIRM_ROUNDS)
    assert [w.code for w in out.warnings] == []
    ran.clear()
    out2 = RunOutcome(records=[rec("fp8", 512, [1.0] * 5)])
    out2.records[0] = Record(**{**out2.records[0].__dict__, "op": "scaled_mm",
                                "params": {"m": 512, "n": 512, "k": 512, "fast_accum": False}})
    suite._confirm(out2, list(out2.records), "gemm", suite.QUICK, fake_run)
    firsts = [c for cases, _ in ran for c in cases]
    assert [getattr(c, "inner", c).fast_accum for c in firsts[:2]] == [False, True]  # fp8: both accumulation modes (the second once)


# --------------------------------------------------------------------------- grouped warnings

def test_warnings_are_grouped_one_line_per_kind():
    ws = [noise.NoiseWarning("high_cov", f"case{i}", 0.1 * i, noise.HINTS["high_cov"]) for i in range(1, 5)]
    ws += [noise.NoiseWarning("few_samples", "a", 3, noise.HINTS["few_samples"]),
           noise.NoiseWarning("few_samples", "b", 2, noise.HINTS["few_samples"])]
    lines = noise.group_lines(ws)
    assert len(lines) == 2
    assert lines[0].startswith("[high_cov] 4 cases, worst case4: 0.4")
    assert lines[1].startswith("[few_samples] 2 cases, worst b: 2")  # fewest samples is worst
    verbose = noise.group_lines(ws, verbose=True)
    assert len(verbose) == 2 + len(ws) and any("case2" in line for line in verbose)
    assert noise.group_lines([]) == []


# --------------------------------------------------------------------------- GEMM verification sampling

def test_gemm_verification_copies_only_sampled_rows(monkeypatch):
    seen = []
    real = KG.to_host_f64

    def spy(x):
        seen.append(tuple(x.shape))
        return real(x)

    monkeypatch.setattr(KG, "to_host_f64", spy)
    case = GemmCase(512, 384, 640, "fp32")
    case.setup(CPU, 1, 0)
    v = case.verify()
    assert v.ok
    assert seen and all(s[0] <= 64 or s[1] <= 256 for s in seen)  # A rows, B columns, C samples only
    assert (512, 640) not in seen and (640, 384) not in seen


def test_take_selects_fp8_through_a_byte_view():
    x = torch.randn(8, 4).to(torch.float8_e4m3fn)
    got = KG.take(x, np.array([1, 5]), 0)
    assert got.dtype == torch.float8_e4m3fn
    assert torch.equal(got.float(), x.float()[[1, 5]])
    cols = KG.take(x.t(), np.array([0, 7]), 1)  # a transposed (column-major) view, as fp8's B
    assert torch.equal(cols.float(), x.t().float()[:, [0, 7]])


def test_backend_failing_while_timed_is_left_out(monkeypatch):
    def probe(self, name, device):
        if name == "MATH":
            raise RuntimeError("CUDA out of memory (fake)")
        return 2e-3

    monkeypatch.setattr(attention.AttentionCase, "_probe", probe)
    case = attention.AttentionCase(1, 2, 2, 64, 16, False, "fwd", "fp32")
    r, skip, _ = run_one(case, CPU, TINY, 0, telemetry=False)
    assert skip is None and r.backend == "FLASH_ATTENTION"
    assert sdpa_backend_times(r.tags)["MATH"] == float("inf")
