"""Show detected devices and their datasheet peaks."""
from __future__ import annotations

import typer
from recoque.bench.devices import GEMM_DTYPES, Device, detect, visible_gpus
from recoque.render import console, emit_json, fmt, table


def devices(json_out: bool = typer.Option(False, "--json", help="Print the same data as JSON."),
            device: str = typer.Option("auto", "--device", help="auto, cpu, gpu[:N], cuda[:N], rocm[:N]")) -> None:
    """Show detected devices and their datasheet peaks."""
    chosen = detect(device)
    # "auto" lists every GPU torch sees; a named device shows just that one.
    shown = list(visible_gpus()) if device.strip().lower() == "auto" and chosen.is_gpu else [chosen]
    if json_out:
        # each table row's source beside the device's fields, so --json says where every figure came from
        emit_json({"selected": chosen.torch_device,
                   "devices": [{**d.to_json(), "sources": {f: src for f, _v, src in rows(d) if src and f != "note"}}
                               for d in shown]})
        return
    for d in shown:
        console.print(table(f"{d.torch_device}: {d.name}", ("field", "value", "source"), rows(d)))


def _bytes(n: float | None, unit: str, scale: float) -> str:
    return "unknown" if n is None else f"{fmt(n / scale)} {unit}"


def rows(d: Device) -> list[tuple[str, str, str]]:
    """The table rows for one device: identity, memory, cache, then one row per GEMM dtype peak."""
    spec_src = ("computed from /proc/cpuinfo" if not d.is_gpu else
                f"seeds/hardware.toml [{d.spec.status}]" if d.spec else "no catalog match")
    out = [("kind", d.kind, ""), ("arch", d.arch or "unknown", ""),
           ("catalog entry", d.spec.key if d.spec and d.is_gpu else ("-" if not d.is_gpu else "none"), spec_src),
           ("memory", _bytes(d.memory_bytes, "GiB", 2**30), "torch" if d.is_gpu else "/proc/meminfo"),
           ("last-level cache", _bytes(d.llc_bytes, "MiB", 2**20), d.llc_source),
           ("compute units", str(d.compute_units or "unknown"), "CUs/SMs visible" if d.is_gpu else "physical cores")]
    if d.cpu_isa:
        out.append(("cpu isa", " ".join(d.cpu_isa), "/proc/cpuinfo flags"))
    if d.is_gpu:
        out.append(("fp8 format", d.fp8_format or "none/unknown", "catalog or arch rule"))
    for dt in GEMM_DTYPES:
        v, src = d.peak(dt)
        out.append((f"peak {dt}", _bytes(v, "TFLOP/s", 1e12), src or ""))
    bw, bw_src = d.peak_bandwidth()
    out.append(("peak memory bandwidth", _bytes(bw, "TB/s", 1e12), bw_src or ""))
    if d.is_gpu:
        link, link_src = d.peak_host_link()
        out.append(("host link, one direction", _bytes(link, "GB/s", 1e9), link_src or ""))
    out.extend(("note", n, "") for n in d.notes)
    return out
