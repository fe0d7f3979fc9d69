"""Published serving results held against the serving model (seeds/validation.toml [[serving]]).

Each case names the model and system presets, the submission's own settings (engine, tp, dtypes,
batch cap, mean prompt/output lengths of its dataset) and the published output tokens/s. `role`:
"calibration" cases are the ones the issue fixes the thresholds on (mean |error| <= 10%, max 15%,
published figure inside the printed low-high); "sanity" cases are further published figures the
model was not calibrated on, reported with their error (the TensorRT-LLM ones size the range, not
the value, of the trtllm engine efficiency: seeds/serving.toml).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from recoque.errors import BadInput, RecoqueError
from recoque.fileio import read_seed_toml
from recoque.planner.serving import ServingEstimate, ServingRequest, estimate_serving
from recoque.planner.system import load_system

CALIBRATION_MEAN_ABS_ERROR = 0.10
CALIBRATION_MAX_ABS_ERROR = 0.15
ROLES = ("calibration", "sanity")
# A closed-loop benchmark's throughput and its median latencies describe the same run: on the
# 407 InferenceMAX rows the ratio of the first to what the second imply has median 0.98 and its
# 5th percentile at 0.93 (the warm-up and drain of a 10 x concurrency prompt set); the next rows up
# from 0.89, and 13 B200 SGLang DeepSeek-R1 rows at 0.52-0.81, apart. Below 0.85 the total time holds
# what the medians do not.
CLOSED_LOOP_MIN_RATIO = 0.85
_REQUEST_KEYS = {  # TOML key (unit in the name) -> (ServingRequest field, scale)
    "prompt_tokens_mean": ("prompt_tokens", 1.0), "output_tokens_mean": ("output_tokens", 1.0),
    "mode": ("mode", None), "batch": ("batch", None), "concurrency": ("concurrency", None),
    "request_rate_per_s": ("request_rate_per_s", 1.0), "ttft_target_ms": ("ttft_target_s", 1e-3),
    "tpot_target_ms": ("tpot_target_s", 1e-3), "percentile": ("percentile", None), "tp": ("tp", None),
    "pp": ("pp", None), "ep": ("ep", None), "attention_dp": ("attention_dp", None), "split_experts": ("split_experts", None), "weights": ("weights", None), "activations": ("activations", None),
    "kv_cache": ("kv_cache", None), "attention_weights": ("attention_weights", None),
    "attention_out_weights": ("attention_out_weights", None), "engine": ("engine", None), "max_batch": ("max_batch", None),
    "length_cv2": ("length_cv2", None), "output_cv2": ("output_cv2", None), "requests": ("requests", None),
    "max_num_tokens": ("max_num_tokens", None), "spec_tokens": ("spec_tokens", None),
    "spec_acceptance": ("spec_acceptance", None), "allreduce_fusion": ("allreduce_fusion", None),
    "hbm_fraction": ("hbm_fraction", None),
}


@dataclass(frozen=True)
class ServingCase:
    key: str
    name: str
    role: str
    model: str
    system: str
    gpus: int
    request: ServingRequest
    published_tokens_per_s: float
    published_ttft_s: float | None = None
    published_tpot_s: float | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def closed_loop_ratio(self) -> float | None:
        """Published throughput / what the run's own median TTFT and TPOT give a closed loop of
        `concurrency` streams, c x output / (TTFT + output x TPOT); None without those figures."""
        c, out = self.request.concurrency, self.request.output_tokens
        if not (c and self.published_ttft_s and self.published_tpot_s):
            return None
        return self.published_tokens_per_s / (c * out / (self.published_ttft_s + out * self.published_tpot_s))

    @property
    def why_not_in_verdict(self) -> str:
        """A closed-loop run whose throughput falls short of its own medians by more than
        CLOSED_LOOP_MIN_RATIO held requests the medians do not show (stalls, failed or retried
        requests): not the steady state the model describes, so shown and left out of the verdict."""
        r = self.closed_loop_ratio()
        if r is None or r >= CLOSED_LOOP_MIN_RATIO:
            return ""
        return (f"published throughput is {r:.2f} of what its own median TTFT and TPOT give "
                f"{self.request.concurrency} closed-loop streams (below {CLOSED_LOOP_MIN_RATIO}): the run held stalls "
                "or failed requests its medians do not show")

    @property
    def in_verdict(self) -> bool:
        return not self.why_not_in_verdict


@dataclass(frozen=True)
class ServingCheck:
    case: ServingCase
    estimate: ServingEstimate | None
    error: float | None      # predicted / published - 1 (output tokens/s)
    inside: bool             # published figure within the printed low-high
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        e = self.estimate
        return {"key": self.case.key, "name": self.case.name, "role": self.case.role,
                "published_tokens_per_s": self.case.published_tokens_per_s,
                "predicted_tokens_per_s": e.tokens_per_s_system if e else None, "error": self.error,
                "inside": self.inside, "published_ttft_s": self.case.published_ttft_s,
                "published_tpot_s": self.case.published_tpot_s, "predicted_ttft_s": e.ttft if e else None,
                "predicted_tpot_s": e.tpot if e else None, "bound": e.bound if e else None, "note": self.note,
                "sources": dict(self.case.sources)}


def case_from_toml(raw: Mapping[str, Any], i: int) -> ServingCase:
    where = f"validation.toml [[serving]] #{i + 1}"
    for k in ("key", "model", "system", "published_output_tokens_per_s", "prompt_tokens_mean", "output_tokens_mean"):
        if k not in raw:
            raise BadInput(f"{where}: missing `{k}`", "see the layout comment above the [[serving]] cases")
    role = str(raw.get("role", "sanity"))
    if role not in ROLES:
        raise BadInput(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}", "fix the case")
    kw: dict[str, Any] = {}
    for tkey, (attr, scale) in _REQUEST_KEYS.items():
        if tkey in raw:
            kw[attr] = raw[tkey] * scale if scale else raw[tkey]
    ttft, tpot = raw.get("published_ttft_ms"), raw.get("published_tpot_ms")
    return ServingCase(key=str(raw["key"]), name=str(raw.get("name", raw["key"])), role=role, model=str(raw["model"]),
                       system=str(raw["system"]), gpus=int(raw.get("gpus", 8)), request=ServingRequest(**kw),
                       published_tokens_per_s=float(raw["published_output_tokens_per_s"]),
                       published_ttft_s=ttft / 1e3 if ttft else None, published_tpot_s=tpot / 1e3 if tpot else None,
                       sources=dict(raw.get("sources", {})))


def load_cases(role: str | None = None, seed_file: str = "validation.toml") -> list[ServingCase]:
    """The [[serving]] cases of seeds/validation.toml, or of a check file of the same layout
    (seeds/serving_checks.toml: never used to set a constant)."""
    return cases_from_seed(read_seed_toml(seed_file), role)


def cases_from_seed(seed: Mapping[str, Any], role: str | None = None) -> list[ServingCase]:
    raw = seed.get("serving", [])
    cases = [case_from_toml(r, i) for i, r in enumerate(raw)]
    return [c for c in cases if role is None or c.role == role]


def run_case(case: ServingCase, profile: Any = None) -> ServingCheck:
    from recoque.planner.workload import load_model

    try:
        system = load_system(case.system).with_gpus(case.gpus)
        est = estimate_serving(load_model(case.model), case.model, system, case.request, profile)
    except RecoqueError as exc:
        return ServingCheck(case, None, None, False, exc.one_line() if hasattr(exc, "one_line") else str(exc))
    t, pub = est.tokens_per_s_system, case.published_tokens_per_s
    return ServingCheck(case, est, t.value / pub - 1.0, t.low <= pub <= t.high)


def run_all(role: str | None = None, profile: Any = None) -> list[ServingCheck]:
    return [run_case(c, profile) for c in load_cases(role)]


@dataclass(frozen=True)
class Summary:
    cases: int
    mean_abs_error: float
    max_abs_error: float
    inside: int
    passed: bool | None   # thresholds apply to the calibration role only


def summarize(checks: list[ServingCheck], role: str) -> Summary:
    mine = [c for c in checks if c.case.role == role]
    errs = [abs(c.error) for c in mine if c.error is not None]
    failed = len(errs) < len(mine)
    mean = sum(errs) / len(errs) if errs else float("nan")
    worst = max(errs) if errs else float("nan")
    inside = sum(c.inside for c in mine)
    passed = None
    if role == "calibration":
        passed = (not failed and mean <= CALIBRATION_MEAN_ABS_ERROR and worst <= CALIBRATION_MAX_ABS_ERROR
                  and inside == len(mine))
    return Summary(len(mine), mean, worst, inside, passed)
