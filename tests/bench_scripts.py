"""Import a script of benchmarks/ as a module in the tests (the scripts import their shared
benchmarks/holdout_cli.py as a sibling, as they do when run from the command line)."""
import importlib
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)
