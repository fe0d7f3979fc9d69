"""LLM serving: tokens/s per GPU and system, time per output token, concurrent users."""
from __future__ import annotations

from typing import Optional

import typer

from recoque.errors import BadInput
from recoque.planner.capacity import assemble, load_profile, plan_infer, resolve_system
from recoque.planner.workloads import get_workload


def infer(system: str = typer.Option(..., "--system", "-s", help="system preset or a TOML file"),
          workload: Optional[str] = typer.Option(None, "--workload", "-w", help="an infer workload (default le-chat)"),
          model: Optional[str] = typer.Option(None, "--model", help="a model from seeds/models.toml"),
          gpus: Optional[int] = typer.Option(None, "--gpus"),
          batch: Optional[int] = typer.Option(None, "--batch", help="fixed batch (default: largest meeting the latency)"),
          prompt_tokens: Optional[int] = typer.Option(None, "--prompt-tokens"),
          output_tokens: Optional[int] = typer.Option(None, "--output-tokens"),
          tpot_ms: Optional[float] = typer.Option(None, "--tpot-ms", help="target time per output token"),
          dtype: Optional[str] = typer.Option(None, "--dtype", help="weight and KV dtype: bf16, fp8"),
          gpus_per_replica: Optional[int] = typer.Option(None, "--gpus-per-replica"),
          profile: Optional[str] = typer.Option(None, "--profile", help="results.json from `recoque bench`: measured rates"),
          as_json: bool = typer.Option(False, "--json", help="emit the same data as JSON")) -> None:
    """LLM serving: tokens/s per GPU and system, time per output token, concurrent users."""
    from recoque.cli.plan import show

    s = resolve_system(system, gpus)
    w = get_workload(workload or ("le-chat" if not model else "")) if (workload or not model) else None
    if w is not None and w.kind != "infer":
        raise BadInput(f"workload {w.key!r} is a {w.kind} workload", "use an infer workload such as le-chat")
    name = model or w.model
    over = dict(batch=batch, prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                target_tpot_s=tpot_ms / 1e3 if tpot_ms is not None else None,
                weight_dtype=dtype, kv_dtype=dtype, gpus_per_replica=gpus_per_replica)
    rows, d, notes, dl, _ = plan_infer(s, w, name, load_profile(profile), **over)
    show(assemble(s, w.key if w else name, "inference", rows, d, notes, dl, None), as_json)
