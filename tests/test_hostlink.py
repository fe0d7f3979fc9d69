"""The host link's peak from the PCI sysfs entry of the GPU torch reports (bench/hostlink.py), on a
fake sysfs tree, and its place as the peak of the h2d/d2h transfer cases."""
import types

import pytest

from recoque.bench import hostlink as H
from recoque.bench.runner import peak_for
from recoque.bench.transfer import TransferCase


def _entry(root, address, speed, width):
    d = root / address
    d.mkdir(parents=True)
    (d / "current_link_speed").write_text(f"{speed}\n")
    (d / "current_link_width").write_text(f"{width}\n")
    return str(root)


@pytest.mark.parametrize("speed, width, gb_s", [
    ("32.0 GT/s PCIe", 16, 63.015),  # PCIe 5.0 x16: 32 x 16 x 128/130 / 8
    ("16.0 GT/s PCIe", 16, 31.508),  # 4.0 x16
    ("8.0 GT/s PCIe", 8, 7.877),     # 3.0 x8: a GPU that trained at half width is held to that
    ("5.0 GT/s PCIe", 16, 8.0),      # 2.0 x16, 8b/10b
    ("64.0 GT/s PCIe", 16, 121.0),   # 6.0 x16, FLIT 242/256
])
def test_the_peak_is_rate_times_lanes_times_the_line_code(tmp_path, speed, width, gb_s):
    root = _entry(tmp_path, "0000:1b:00.0", speed, width)
    peak, src = H.link_peak("0000:1b:00.0", root)
    assert peak / 1e9 == pytest.approx(gb_s, rel=1e-3)
    assert f"x{width}" in src and "current_link_speed" in src


def test_an_idle_link_is_held_to_the_speed_both_ends_support(tmp_path):
    # detection reads the link idle, dropped to 2.5 GT/s to save power: that is not its peak
    root = _entry(tmp_path, "0000:1b:00.0", "2.5 GT/s PCIe", 16)
    (tmp_path / "0000:1b:00.0" / "max_link_speed").write_text("32.0 GT/s PCIe\n")
    peak, src = H.link_peak("0000:1b:00.0", root)
    assert peak / 1e9 == pytest.approx(63.015, rel=1e-3) and "2.5 GT/s when read, idle" in src
    (tmp_path / "max_link_speed").write_text("16.0 GT/s PCIe\n")  # the port above is a PCIe 4.0 one
    assert H.link_peak("0000:1b:00.0", root)[0] / 1e9 == pytest.approx(31.508, rel=1e-3)


def test_the_address_comes_from_torch_properties():
    props = types.SimpleNamespace(pci_domain_id=0, pci_bus_id=0x1B, pci_device_id=0)
    assert H.bdf(props) == "0000:1b:00.0"
    assert H.bdf(types.SimpleNamespace()) is None  # torch before 2.6


def test_an_unreadable_link_is_unknown_with_the_reason(tmp_path):
    assert H.link_peak(None)[0] is None
    peak, why = H.link_peak("0000:01:00.0", str(tmp_path))
    assert peak is None and why.startswith("unknown") and "0000:01:00.0" in why
    root = _entry(tmp_path, "0000:02:00.0", "Unknown", 0)  # what a VM may expose
    assert H.link_peak("0000:02:00.0", root)[0] is None


def test_transfer_peaks_are_the_host_link_and_the_hbm():
    dev = types.SimpleNamespace(peak_host_link=lambda: (63.0e9, "PCIe"), peak_bandwidth=lambda: (4.8e12, "HBM"))
    assert peak_for(TransferCase("h2d", 2**20), dev) == (63.0, "PCIe")
    assert peak_for(TransferCase("d2h", 2**20), dev) == (63.0, "PCIe")
    assert peak_for(TransferCase("d2d", 2**20), dev) == (4800.0, "HBM")


def test_a_detected_gpu_carries_its_link_into_devices_and_the_table(tmp_path, monkeypatch):
    from recoque.bench.devices import gpu_device
    from recoque.cli.devices import rows

    monkeypatch.setattr(H, "PCI_ROOT", _entry(tmp_path, "0000:1b:00.0", "32.0 GT/s PCIe", 16))
    props = types.SimpleNamespace(name="NVIDIA H200", major=9, minor=0, multi_processor_count=132,
                                  total_memory=150109880320, L2_cache_size=62914560,
                                  pci_domain_id=0, pci_bus_id=0x1B, pci_device_id=0)
    dev = gpu_device("cuda", 0, props)
    assert dev.host_link_bytes_s == pytest.approx(63.015e9, rel=1e-3)
    assert dev.to_json()["host_link_bytes_s"]["bytes_s"] == dev.host_link_bytes_s
    row = next(r for r in rows(dev) if r[0].startswith("host link"))
    assert row[1].startswith("63") and "x16" in row[2]
