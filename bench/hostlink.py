"""The host link of a GPU, read from the PCI sysfs entry of the device torch reports: the peak one
direction of a host-device copy (h2d, d2h) can reach.

    peak bytes/s = transfer rate (GT/s per lane) x lanes x line-code efficiency / 8 bits

Line codes (PCI-SIG base specifications): 8b/10b up to 5 GT/s (PCIe 1.x, 2.x), 128b/130b at 8, 16
and 32 GT/s (PCIe 3.0-5.0); PCIe 6.0 (64 GT/s, FLIT mode) carries 242 of every 256 FLIT bytes as
TLP and DLLP (the other 14 are CRC and FEC). A x16 PCIe 5.0 link: 32 x 16 x 128/130 / 8 = 63.0 GB/s.
The speed is the highest both ends of the link support (max_link_speed of the GPU and of the port
above it), not current_link_speed: an idle GPU drops its link to 2.5 GT/s to save power (NVIDIA and
AMD both, PCIe link power management) and detection reads it idle, so the current speed would make
every copy "faster than the peak". A link that trained lower than both ends allow then shows as a
low fraction of its peak, which is what such a fault should look like. The width is the trained
one (current_link_width), which power saving leaves alone. Without a readable entry (a VM that
hides it, a host link that is not PCIe, such as NVLink-C2C on GH200) the peak is unknown.
"""
from __future__ import annotations

import os
import re
from typing import Any

PCI_ROOT = "/sys/bus/pci/devices"
_SPEED = re.compile(r"^\s*([\d.]+)\s*GT/s")


def line_code_efficiency(gt_s: float) -> float:
    if gt_s <= 5.0:
        return 8.0 / 10.0
    if gt_s <= 32.0:
        return 128.0 / 130.0
    return 242.0 / 256.0


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def bdf(props: Any) -> str | None:
    """The PCI address 'dddd:bb:dd.0' of torch's device properties (pci_domain_id, pci_bus_id,
    pci_device_id; torch 2.6 and later), or None."""
    try:
        return f"{int(props.pci_domain_id):04x}:{int(props.pci_bus_id):02x}:{int(props.pci_device_id):02x}.0"
    except (AttributeError, TypeError, ValueError):
        return None


def link_peak(address: str | None, root: str | None = None) -> tuple[float | None, str]:
    """(bytes/s one direction, source), or (None, why unknown)."""
    if address is None:
        return None, "unknown: torch gives no PCI address for this GPU"
    entry = os.path.join(PCI_ROOT if root is None else root, address)
    width = _read(os.path.join(entry, "current_link_width")) or _read(os.path.join(entry, "max_link_width"))
    ends = [_gt_s(os.path.join(entry, "max_link_speed")), _gt_s(os.path.join(entry, "..", "max_link_speed"))]
    now = _gt_s(os.path.join(entry, "current_link_speed"))
    speeds = [x for x in ends if x] or ([now] if now else [])
    if not speeds or width is None or not width.isdigit() or int(width) <= 0:
        return None, f"unknown: no PCIe link speed and width under {entry}"
    gt_s, lanes = min(speeds), int(width)
    code = line_code_efficiency(gt_s)
    peak = gt_s * 1e9 * lanes * code / 8.0
    basis = "the highest both ends support (max_link_speed)" if any(ends) else "as trained (current_link_speed)"
    idle = f"; {now:g} GT/s when read, idle" if now and any(ends) and now < gt_s else ""
    return peak, (f"PCIe link {gt_s:g} GT/s x{lanes}, {basis}{idle} ({entry}), "
                  f"line code {code:.4g}: {peak / 1e9:.1f} GB/s per direction")


def _gt_s(path: str) -> float | None:
    m = _SPEED.match(_read(path) or "")
    return float(m.group(1)) if m and float(m.group(1)) > 0 else None
