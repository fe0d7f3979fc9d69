"""Telemetry reads the physical GPU behind torch's visible index (fake pynvml / amdsmi modules)."""
import sys
import types

import pytest

from recoque.bench import environment, telemetry


def test_visible_index_maps_to_the_physical_gpu():
    assert telemetry.physical_id(1, hip=False, environ={"CUDA_VISIBLE_DEVICES": "3,5"}) == "5"
    assert telemetry.physical_id(0, hip=False, environ={"CUDA_VISIBLE_DEVICES": "GPU-abc,GPU-def"}) == "GPU-abc"
    assert telemetry.physical_id(2, hip=False, environ={}) == "2"
    # ROCm: ROCR selects from the physical GPUs, then HIP selects by position from what is left
    assert telemetry.physical_id(0, hip=True, environ={"ROCR_VISIBLE_DEVICES": "4,6", "HIP_VISIBLE_DEVICES": "1"}) == "6"
    assert telemetry.physical_id(1, hip=True, environ={"HIP_VISIBLE_DEVICES": "2,7"}) == "7"
    assert telemetry.physical_id(0, hip=True, environ={"ROCR_VISIBLE_DEVICES": "3"}) == "3"


def fake_pynvml(calls):
    m = types.ModuleType("pynvml")
    m.NVML_CLOCK_SM, m.NVML_TEMPERATURE_GPU = "sm", "gpu"
    m.nvmlInit = lambda: None
    m.nvmlDeviceGetHandleByIndex = lambda i: calls.append(("index", i)) or f"h{i}"
    m.nvmlDeviceGetHandleByUUID = lambda u: calls.append(("uuid", u)) or f"h{u}"
    m.nvmlDeviceGetClockInfo = lambda h, kind: 1980
    m.nvmlDeviceGetPowerUsage = lambda h: 650_000  # milliwatts
    m.nvmlDeviceGetTemperature = lambda h, kind: 61
    return m


def test_nvml_reads_the_mapped_gpu_in_process(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(calls))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    dev = types.SimpleNamespace(kind="cuda", torch_device="cuda:1")
    reader, source, note = telemetry.make_reader(dev)
    assert calls[0] == ("index", 5) and "pynvml" in source and "5" in source
    assert reader() == {"clock_mhz": 1980, "power_w": 650.0, "temp_c": 61} and note == ""


def test_amdsmi_reads_the_mapped_gpu_in_process(monkeypatch):
    m = types.ModuleType("amdsmi")
    m.amdsmi_init = lambda: None
    m.amdsmi_get_processor_handles = lambda: [f"h{i}" for i in range(8)]
    m.AmdSmiClkType = types.SimpleNamespace(GFX="gfx")
    m.AmdSmiTemperatureType = types.SimpleNamespace(HOTSPOT="hot")
    m.AmdSmiTemperatureMetric = types.SimpleNamespace(CURRENT="cur")
    seen = []
    m.amdsmi_get_clock_info = lambda h, k: seen.append(h) or {"clk": 2100}
    m.amdsmi_get_power_info = lambda h: {"current_socket_power": "N/A", "average_socket_power": 712}
    m.amdsmi_get_temp_metric = lambda h, t, k: 70
    monkeypatch.setitem(sys.modules, "amdsmi", m)
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "2,7")
    monkeypatch.delenv("ROCR_VISIBLE_DEVICES", raising=False)
    reader, source, _ = telemetry.make_reader(types.SimpleNamespace(kind="rocm", torch_device="cuda:1"))
    assert "amdsmi" in source
    assert reader() == {"clock_mhz": 2100, "power_w": 712, "temp_c": 70}
    assert set(seen) == {"h7"}  # physical GPU 7, not torch's index 1
    m.amdsmi_get_energy_count = lambda h: {"energy_accumulator": 2_000_000 if h == "h7" else 1,
                                           "counter_resolution": 15.3}
    assert reader()["energy_j"] == pytest.approx(30.6)  # counts x 15.3 uJ, of the same physical GPU
    m.amdsmi_get_energy_count = lambda h: {"power": 2_000_000, "counter_resolution": 15.3}  # ROCm <= 6.2's key
    assert reader()["energy_j"] == pytest.approx(30.6)


def test_nvml_energy_counter_gives_the_energy_of_the_run(monkeypatch):
    calls, mj = [], iter([1_000_000, 1_000_000] + [1_100_000] * 1000)  # the probe, the start, the rest
    m = fake_pynvml(calls)
    m.nvmlDeviceGetTotalEnergyConsumption = lambda h: next(mj)  # millijoules
    monkeypatch.setitem(sys.modules, "pynvml", m)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc")
    monkeypatch.setattr(telemetry.power, "GPU_POWER_WINDOW_S", 0.0)  # a run this short is under the real window
    with telemetry.Sampler(types.SimpleNamespace(kind="cuda", torch_device="cuda:0"), interval_s=0.01) as s:
        pass
    out = s.summary()
    assert calls[0] == ("uuid", "GPU-abc") and "pynvml" in out["source"] and "note" not in out
    assert out["energy_j"] == pytest.approx(100.0) and out["energy_from"] == "counter"
    assert out["power_w"]["mean"] == 650.0 and out["throttled"] is None  # two readings: too few to say


def test_environment_records_blas_and_performance_variables(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "5")
    monkeypatch.setenv("UNRELATED_SECRET", "x")
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/home/someone/.cache/recoque/numba")  # recoque's own, per user
    env = environment.recorded_env()
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and env["MKL_DEBUG_CPU_TYPE"] == "5"
    assert env["NUMBA_NUM_THREADS"] == "2"
    assert "UNRELATED_SECRET" not in env and "NUMBA_CACHE_DIR" not in env
    libs = environment.blas_libraries()
    pytest.importorskip("threadpoolctl")
    assert any(lib.get("user_api") == "blas" and lib.get("internal_api") for lib in libs)


def test_tunableop_files_stay_out_of_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PYTORCH_TUNABLEOP_ENABLED", "1")
    monkeypatch.setenv("PYTORCH_TUNABLEOP_FILENAME", "x")  # registered, so the test's own setting is undone afterwards
    monkeypatch.delenv("PYTORCH_TUNABLEOP_FILENAME")
    monkeypatch.setenv("HIPBLASLT_ALLOW_TF32", "x")  # registered, so the test's own setting is undone afterwards
    monkeypatch.delenv("HIPBLASLT_ALLOW_TF32")
    made = environment.prepare(types.SimpleNamespace(kind="rocm"))
    assert made["PYTORCH_TUNABLEOP_FILENAME"].startswith(str(tmp_path / ".cache" / "recoque" / "tunableop"))
    assert made["HIPBLASLT_ALLOW_TF32"] == "1"
    monkeypatch.setenv("PYTORCH_TUNABLEOP_FILENAME", "mine.csv")  # the user's choice is kept
    assert "PYTORCH_TUNABLEOP_FILENAME" not in environment.prepare(types.SimpleNamespace(kind="rocm"))
    assert environment.prepare(types.SimpleNamespace(kind="cpu")) == {}
