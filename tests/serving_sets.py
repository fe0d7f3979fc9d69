"""The seed files holding [[serving]] cases: the calibration set and every check set. Tests that
sample all of them, or hold one set's keys apart from the others, read this one list."""
from bench_scripts import load_script
from recoque.planner.serving_validation import load_cases

SERVING_SEEDS = ("validation.toml", "serving_checks.toml", "serving_checks_inferencemax.toml",
                 "serving_checks_trtllm017.toml", "serving_checks_trtllm_moe.toml", "serving_checks_gptoss.toml")


def others(seed: str) -> tuple[str, ...]:
    """Every serving seed file but `seed`."""
    return tuple(f for f in SERVING_SEEDS if f != seed)


def distinct_cases(seed: str, count: int, against: tuple[str, ...] | None = None) -> list:
    """The cases of `seed`, held to `count` rows with keys of their own that no file of `against`
    (default: every other serving seed file) uses."""
    cases = load_cases(seed_file=seed)
    keys = {c.key for c in cases}
    assert len(keys) == len(cases) == count
    assert not keys & {c.key for f in (others(seed) if against is None else against) for c in load_cases(seed_file=f)}
    return cases


def holdout_rows(seed: str) -> list[dict]:
    """The rows benchmarks/serving_holdout.py prints for `seed`: each case's error, range and vendor."""
    return load_script("serving_holdout").rows(load_cases(seed_file=seed))
