"""Device discovery, CPU peak rules, GPU paths (through a monkeypatched torch), telemetry, environment, CLI."""
from __future__ import annotations

import json
import math
import time
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from recoque.bench import devices as dev
from recoque.bench import environment, telemetry
from recoque.bench.devices import CpuFacts, cpu_facts, cpu_peaks, detect, parse_cpuinfo, zen_generation
from recoque.errors import BadInput


@pytest.fixture(autouse=True)
def fresh_detection():
    dev.clear_cache()
    yield
    dev.clear_cache()


def facts(flags: str, vendor: str = "AuthenticAMD", family: int | None = 25, model: int | None = 17,
          cores: int = 4, clock_hz: float | None = 2.0e9) -> CpuFacts:
    return CpuFacts(vendor=vendor, family=family, model=model, model_name="test cpu", cores=cores,
                    clock_hz=clock_hz, clock_source="test clock", flags=frozenset(flags.split()))


# --------------------------------------------------------------------------- CPU rules (pure)


@pytest.mark.parametrize("vendor,family,model,gen", [
    ("AuthenticAMD", 25, 0x11, 4), ("AuthenticAMD", 25, 0x61, 4), ("AuthenticAMD", 25, 0xA0, 4),
    ("AuthenticAMD", 25, 0x01, 3), ("AuthenticAMD", 25, 0x21, 3), ("AuthenticAMD", 26, 0x02, 5),
    ("AuthenticAMD", 23, 0x31, 2), ("AuthenticAMD", 23, 0x01, 1), ("GenuineIntel", 6, 143, None),
    ("AuthenticAMD", None, None, None),
])
def test_zen_generation(vendor, family, model, gen):
    assert zen_generation(vendor, family, model) == gen


@pytest.mark.parametrize("f,fp64,fp32,bf16,fp16,assumed", [
    # fp16 None: no FP16 arithmetic without AVX512_FP16 (torch converts element by element), no peak
    (facts("avx2 fma avx512f avx512_bf16", family=25, model=0x11), 16, 32, 64, None, False),  # Zen 4 Genoa
    (facts("avx2 fma avx512f avx512_bf16", family=26, model=0x02), 32, 64, 128, None, False),  # Zen 5 Turin
    (facts("avx2 fma", family=25, model=0x01), 16, 32, 32, None, False),  # Zen 3 Milan
    (facts("avx2 fma avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile", vendor="GenuineIntel", family=6, model=143),
     32, 64, 1024, 64, True),  # Sapphire Rapids: AMX BF16; AVX512_FP16, but torch's fp16 GEMM runs at the FP32 rate
    (facts("avx2 fma avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_fp16 amx_tile", vendor="GenuineIntel", family=6,
           model=173), 32, 64, 1024, 1024, True),  # Granite Rapids: AMX-FP16 runs fp16 on the tiles
    (facts("avx2 fma", vendor="GenuineIntel", family=6, model=85), 16, 32, 32, None, True),
])
def test_cpu_flops_per_cycle_rules(f, fp64, fp32, bf16, fp16, assumed):
    peaks = cpu_peaks(f)
    per_cycle = {k: v / (f.cores * f.clock_hz) if v else None for k, (v, _) in peaks.items()}
    assert per_cycle == {"fp64_vector": fp64, "fp64_matrix": fp64, "fp32": fp32, "bf16": bf16, "fp16": fp16}
    src = peaks["fp64_vector"][1]
    assert f"{f.cores} cores x 2.000 GHz" in src and "test clock" in src and f"x {fp64} FLOP/cycle/core" in src
    assert ("assumed" in src) == assumed


def test_cpu_peaks_unknown_when_no_rule_or_clock():
    no_isa = cpu_peaks(facts("neon asimd", vendor="", family=None, model=None))
    assert all(v is None for v, _ in no_isa.values())
    assert "no FLOPs/cycle rule" in no_isa["fp32"][1]
    no_clock = cpu_peaks(facts("avx2 fma", clock_hz=None))
    assert all(v is None for v, _ in no_clock.values())


CPUINFO = "".join(
    f"processor\t: {p}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
    f"model name\t: AMD EPYC 9654 96-Core Processor\nphysical id\t: {p // 4}\ncore id\t\t: {(p % 4) // 2}\n"
    f"cpu MHz\t\t: {2400 + p}.000\nflags\t\t: fpu avx avx2 fma avx512f avx512_bf16\n\n"
    for p in range(8))  # 2 sockets x 2 cores x 2 threads


def test_cpu_facts_counts_physical_cores_and_picks_clock():
    blocks = parse_cpuinfo(CPUINFO)
    assert len(blocks) == 8
    all_cpus = cpu_facts(blocks)
    assert all_cpus.cores == 4 and all_cpus.family == 25 and all_cpus.model == 17
    assert all_cpus.clock_hz == 2400e6 and "/proc/cpuinfo" in all_cpus.clock_source
    assert "avx512_bf16" in all_cpus.flags and all_cpus.model_name.startswith("AMD EPYC 9654")
    one_socket = cpu_facts(blocks, allowed_cpus={0, 1, 2, 3})
    assert one_socket.cores == 2
    boosted = cpu_facts(blocks, max_freq_khz=3_700_000)
    assert boosted.clock_hz == 3.7e9 and "cpufreq" in boosted.clock_source


def test_cache_size_parsing():
    assert dev.cache_size_bytes("32768K") == 32 * 2**20
    assert dev.cache_size_bytes("32 MiB") == 32 * 2**20
    assert dev.cache_size_bytes("1024 KB") == 2**20
    assert dev.cache_size_bytes("junk") is None


# --------------------------------------------------------------------------- detection on this machine


def test_detect_cpu_on_this_machine():
    d = detect("cpu")
    assert d.kind == "cpu" and d.torch_device == "cpu" and not d.is_gpu
    assert d.compute_units >= 1
    assert d.spec is not None and d.spec.vendor == "cpu"
    fp64, src = d.peak("fp64")
    if {"avx2", "avx512f"} & set(d.cpu_isa):  # an x86 rule applies: a computed, sourced peak
        assert fp64 > 0 and "cores x" in src
        assert d.peak("bf16")[0] >= d.peak("fp32")[0] >= fp64
    if d.arch == "zen4" and "avx512_bf16" in d.cpu_isa:  # this CI machine: AMD EPYC family 25 model 17
        assert math.isclose(d.peak("bf16")[0], 4 * fp64)
        assert math.isclose(fp64, d.compute_units * dev.read_cpu_facts().clock_hz * 16)
    tf32, why = d.peak("tf32")
    assert tf32 is None and "TF32" in why
    assert d.peak_bandwidth()[0] is None
    assert detect("cpu") is d  # detected once


def test_detect_rejects_nonsense():
    with pytest.raises(BadInput) as exc:
        detect("nonsense")
    assert "gpu:N" in exc.value.fix and "cpu" in exc.value.fix


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_detect_gpu_without_gpu_is_bad_input():
    for form in ("cuda", "gpu:1", "rocm"):
        with pytest.raises(BadInput) as exc:
            detect(form)
        assert "no GPU visible" in exc.value.what
        assert "GPU build of torch" in exc.value.fix


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_auto_falls_back_to_cpu_loudly(capsys):
    d = detect("auto")
    assert d.kind == "cpu"
    err = capsys.readouterr().err
    assert "no GPU visible to torch: using the CPU" in err
    assert len(err.strip().splitlines()) == 1


def test_peak_rejects_unknown_dtype():
    with pytest.raises(BadInput, match="GEMM dtype"):
        detect("cpu").peak("int4")


# --------------------------------------------------------------------------- GPU paths, monkeypatched torch


def fake_gpus(monkeypatch, props: list[SimpleNamespace], hip: str | None = "6.2.41133", cuda: str | None = None):
    monkeypatch.setattr(torch.version, "hip", hip, raising=False)
    monkeypatch.setattr(torch.version, "cuda", cuda, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(props))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props[i])
    dev.clear_cache()


def mi300x(cus: int = 304) -> SimpleNamespace:
    return SimpleNamespace(name="AMD Instinct MI300X", gcnArchName="gfx942:sramecc+:xnack-",
                           total_memory=205_822_885_888, multi_processor_count=cus, L2_cache_size=4 * 2**20,
                           major=9, minor=4)


def test_rocm_gpu_detection(monkeypatch):
    fake_gpus(monkeypatch, [mi300x(), mi300x()])
    d = detect("auto")
    assert (d.kind, d.torch_device, d.arch) == ("rocm", "cuda:0", "gfx942")
    assert d.spec.key == "mi300x" and d.compute_units == 304 and d.memory_bytes == 205_822_885_888
    assert d.llc_bytes == 256 * 2**20 and "catalog" in d.llc_source  # the MALL, not torch's 4 MiB L2
    assert d.fp8_format == "e4m3fnuz"
    bf16, src = d.peak("bf16")
    assert bf16 == pytest.approx(1307.4e12) and "mi300x.bf16_tflops" in src
    assert d.peak("fp64")[0] == pytest.approx(163.4e12)
    assert d.peak_bandwidth()[0] == pytest.approx(5.3e12)
    assert detect("rocm:1").torch_device == "cuda:1" and detect("gpu").torch_device == "cuda:0"
    with pytest.raises(BadInput, match="only 2 GPU"):
        detect("cuda:2")


def test_mi250x_gcd_is_what_torch_sees(monkeypatch):
    gcd = SimpleNamespace(name="AMD Instinct MI250X", gcnArchName="gfx90a:sramecc+:xnack-",
                          total_memory=68_702_699_520, multi_processor_count=110, L2_cache_size=8 * 2**20)
    fake_gpus(monkeypatch, [gcd])
    d = detect("gpu")
    assert d.spec.key == "mi250x_gcd"
    assert d.peak("fp64")[0] == pytest.approx(47.85e12)
    fp8, why = d.peak("fp8")
    assert fp8 is None and "absent" in why
    assert d.fp8_format is None


def test_partitioned_gpu_scales_compute_and_drops_bandwidth(monkeypatch):
    fake_gpus(monkeypatch, [mi300x(cus=38)])  # CPX mode: one XCD per logical GPU
    d = detect("auto")
    bf16, src = d.peak("bf16")
    assert bf16 == pytest.approx(1307.4e12 * 38 / 304) and "38/304" in src
    bw, why = d.peak_bandwidth()
    assert bw is None and "partition" in why


def test_cuda_gpu_detection(monkeypatch):
    h100 = SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=85_029_158_912, multi_processor_count=132,
                           L2_cache_size=50 * 2**20, major=9, minor=0)
    fake_gpus(monkeypatch, [h100], hip=None, cuda="12.4")
    d = detect("cuda")
    assert (d.kind, d.arch, d.spec.key, d.fp8_format) == ("cuda", "sm_90", "h100_sxm", "e4m3fn")
    assert d.llc_bytes == 50 * 2**20 and d.llc_source == "torch L2_cache_size"
    assert d.peak("tf32")[0] == pytest.approx(494.7e12)
    with pytest.raises(BadInput, match="CUDA build"):
        detect("rocm")


def test_unknown_gpu_has_no_invented_peaks(monkeypatch):
    odd = SimpleNamespace(name="NVIDIA RTX 6000 Ada Generation", total_memory=48 * 2**30, multi_processor_count=142,
                          L2_cache_size=96 * 2**20, major=8, minor=9)
    fake_gpus(monkeypatch, [odd], hip=None, cuda="12.4")
    d = detect("auto")
    assert d.spec is None and d.llc_bytes == 96 * 2**20
    assert all(d.peak(x) == (None, None) for x in dev.GEMM_DTYPES)
    assert d.peak_bandwidth() == (None, None)
    assert d.fp8_format == "e4m3fn" and any("no catalog entry" in n for n in d.notes)


def test_fp8_format_for_arch():
    assert dev.fp8_format_for_arch("gfx942") == "e4m3fnuz"
    assert dev.fp8_format_for_arch("gfx950") == "e4m3fn"
    assert dev.fp8_format_for_arch("sm_89") == "e4m3fn"
    assert dev.fp8_format_for_arch("sm_80") is None
    assert dev.fp8_format_for_arch(None) is None


# --------------------------------------------------------------------------- telemetry


def test_parse_nvidia_smi():
    assert telemetry.parse_nvidia_smi("1980, 612.45, 71\n") == {"clock_mhz": 1980, "power_w": 612.45, "temp_c": 71}
    assert telemetry.parse_nvidia_smi("[N/A], 300.1, 40\n") == {"power_w": 300.1, "temp_c": 40}
    assert telemetry.parse_nvidia_smi("") == {}


def test_parse_amd_json_both_tools():
    amd_smi = json.dumps([{"gpu": 0, "power": {"socket_power": {"value": 702, "unit": "W"}},
                           "clock": {"gfx_0": {"clk": {"value": 2100, "unit": "MHz"}}},
                           "temperature": {"edge": {"value": 40}, "hotspot": {"value": 63, "unit": "C"}}}])
    assert telemetry.parse_amd_json(amd_smi) == {"power_w": 702, "temp_c": 63, "clock_mhz": 2100}
    rocm_smi = json.dumps({"card0": {"Average Graphics Package Power (W)": "498.0",
                                     "Temperature (Sensor junction) (C)": "58.0", "sclk clock speed:": "(1700Mhz)"}})
    assert telemetry.parse_amd_json(rocm_smi) == {"power_w": 498.0, "temp_c": 58.0, "clock_mhz": 1700}
    assert telemetry.parse_amd_json("not json") == {}


def test_torch_telemetry_units(monkeypatch):
    monkeypatch.setattr(torch.cuda, "clock_rate", lambda i: 1980, raising=False)
    monkeypatch.setattr(torch.cuda, "power_draw", lambda i: 650_000, raising=False)
    monkeypatch.setattr(torch.cuda, "temperature", lambda i: 70, raising=False)
    assert telemetry.torch_reading(0, hip=False) == {"clock_mhz": 1980, "power_w": 650.0, "temp_c": 70}
    monkeypatch.setattr(torch.cuda, "power_draw", lambda i: 700, raising=False)  # amdsmi: watts
    assert telemetry.torch_reading(0, hip=True)["power_w"] == 700

    def broken(i):
        raise ModuleNotFoundError("pynvml")

    monkeypatch.setattr(torch.cuda, "temperature", broken, raising=False)
    assert "temp_c" not in telemetry.torch_reading(0, hip=False)


def test_sampler_summarizes_gpu_readings(monkeypatch):
    clocks = iter([2400, 2100, 2000, 1900] + [1900] * 1000)  # the first answers the source probe
    monkeypatch.setattr(telemetry, "torch_reading", lambda i, hip: {"clock_mhz": next(clocks), "power_w": 500.0})
    gpu = SimpleNamespace(kind="rocm", torch_device="cuda:0")
    with telemetry.Sampler(gpu, interval_s=0.01) as s:
        time.sleep(0.15)
    summ = s.summary()
    assert s.source.startswith("torch.cuda")
    assert summ["clock_mhz"]["max"] == 2100 and summ["clock_mhz"]["min"] == 1900
    assert summ["power_w"]["median"] == 500.0 and summ["clock_mhz"]["n"] >= 3
    assert "temp_c" not in summ


def _absent(phys):
    raise ImportError("no vendor library here")


def test_sampler_is_empty_when_nothing_readable(monkeypatch):
    # On a GPU node with nvidia-ml-py installed the vendor library would answer: take it away too.
    monkeypatch.setattr(telemetry, "nvml_reader", _absent)
    monkeypatch.setattr(telemetry, "amdsmi_reader", _absent)
    monkeypatch.setattr(telemetry, "torch_reading", lambda i, hip: {})
    monkeypatch.setattr(telemetry, "cli_reading", lambda i, hip: {})
    with telemetry.Sampler(SimpleNamespace(kind="cuda", torch_device="cuda:0"), interval_s=0.01) as s:
        time.sleep(0.03)
    summ = s.summary()
    assert s.source == "none" and summ["source"] == "none" and not s.samples
    assert not {"clock_mhz", "power_w", "temp_c", "energy_j"} & set(summ)
    assert "power unavailable" in summ["note"] and "nvidia-ml-py" in summ["note"]


def test_cpu_mhz_from_cpuinfo():
    assert telemetry.cpu_mhz_from_cpuinfo(CPUINFO) == pytest.approx(2403.5)
    assert telemetry.cpu_mhz_from_cpuinfo("") is None


# --------------------------------------------------------------------------- environment


def test_capture_and_fingerprint(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    d = detect("cpu")
    env = environment.capture(d)
    assert env["python"].count(".") == 2 and env["torch_version"] == torch.__version__
    assert env["hostname"] and env["device_kind"] == "cpu" and env["cpu_cores"] == d.compute_units
    assert env["env"]["OMP_NUM_THREADS"] == "2" and "numpy_version" in env
    fp = environment.fingerprint(env)
    assert fp == environment.fingerprint(dict(env, cpu_governor="performance", env={}))  # clocks/env ignored
    other = dict(env, device_name="AMD Instinct MI300X", device_kind="rocm")
    assert environment.fingerprint(other) != fp
    same, diff = environment.same_machine(env, other)
    assert not same and set(diff) == {"device_name", "device_kind"}


def test_capture_survives_unreadable_parts(monkeypatch):
    def boom():
        raise OSError("no /etc/os-release here")

    monkeypatch.setattr(environment, "_os_name", boom)
    env = environment.capture(detect("cpu"))
    assert "os" not in env and "python" in env and "cpu_model" in env


# --------------------------------------------------------------------------- CLI


def test_cli_devices_json():
    from recoque.cli import app

    res = CliRunner().invoke(app, ["devices", "--json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    (cpu,) = data["devices"]
    assert data["selected"] == "cpu" and cpu["kind"] == "cpu"
    assert set(cpu["peak_flop_s"]) == set(dev.GEMM_DTYPES)
    assert cpu["peak_flop_s"]["tf32"]["flop_s"] is None and cpu["peak_flop_s"]["tf32"]["source"]


def test_cli_devices_table_and_bad_device():
    from recoque.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["devices", "--device", "cpu"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "peak bf16" in res.stdout and "last-level cache" in res.stdout
    bad = runner.invoke(app, ["devices", "--device", "tpu"])
    assert bad.exit_code == 2 and "not a device" in bad.output
