"""The seed files holding [[serving]] cases: the calibration set and every check set. Tests that
sample all of them, or hold one set's keys apart from the others, read this one list."""

SERVING_SEEDS = ("validation.toml", "serving_checks.toml", "serving_checks_inferencemax.toml",
                 "serving_checks_trtllm017.toml", "serving_checks_trtllm_moe.toml", "serving_checks_gptoss.toml")


def others(seed: str) -> tuple[str, ...]:
    """Every serving seed file but `seed`."""
    return tuple(f for f in SERVING_SEEDS if f != seed)
