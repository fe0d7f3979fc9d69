"""The host link of a GPU, read from the PCI sysfs entry of the device torch reports: the peak one
direction of a host-device copy (h2d, d2h) can reach.

    peak bytes/s = transfer rate (GT/s per lane) x lanes x line-code efficiency / 8 bits

Line codes (PCI-SIG base specifications): 8b/10b up to 5 GT/s (PCIe 1.x, 2.x), 128b/130b at 8, 16
and 32 GT/s (PCIe 3.0-5.0); PCIe 6.0 (64 GT/s, FLIT mode) carries 242 of every 256 FLIT bytes as
TLP and DLLP (the other 14 are CRC and FEC). A x16 PCIe 5.0 link: 32 x 16 x 128/130 / 8 = 63.0 GB/s.
The link as it trained now (current_link_speed/width), not its maximum: a GPU that came up at a
lower generation or width is held against what it has. Without a readable entry (a VM that hides
it, a host link that is not PCIe, such as NVLink-C2C on GH200) the peak is unknown.
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
    speed, width = _read(os.path.join(entry, "current_link_speed")), _read(os.path.join(entry, "current_link_width"))
    m = _SPEED.match(speed or "")
    if m is None or width is None or not width.isdigit() or int(width) <= 0:
        return None, f"unknown: no PCIe link speed and width under {entry}"
    gt_s, lanes = float(m.group(1)), int(width)
    if gt_s <= 0:
        return None, f"unknown: {entry} reports {speed}"
    code = line_code_efficiency(gt_s)
    peak = gt_s * 1e9 * lanes * code / 8.0
    return peak, (f"PCIe link {gt_s:g} GT/s x{lanes} as trained ({entry}/current_link_speed, current_link_width), "
                  f"line code {code:.4g}: {peak / 1e9:.1f} GB/s per direction")
