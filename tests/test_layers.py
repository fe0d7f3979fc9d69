"""The libraries (kernels/, bench/, planner/) neither parse a command line nor render: only the CLI
edge (src/recoque/cli/) and recoque.render import typer or rich. Own modules are imported plainly,
never guarded as if they might be missing."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("kernels", "bench", "planner")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0] if node.level == 0 else "")
            if node.module.startswith("recoque.render") or node.module.startswith("recoque.cli"):
                names.add("recoque.render/cli")
    return names


def _library_files() -> list[Path]:
    return [p for lib in LIBRARIES for p in sorted((ROOT / lib).rglob("*.py"))]


def test_libraries_import_neither_typer_nor_rich_nor_the_cli():
    files = _library_files()
    assert len(files) > 20
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & {"typer", "rich", "recoque.render/cli"})
                 for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_guards_against_own_modules_being_absent():
    for p in _library_files() + sorted((ROOT / "src" / "recoque").rglob("*.py")):
        text = p.read_text(encoding="utf-8")
        assert 'find_spec("recoque' not in text, p
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                    isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                    for h in node.handlers):
                own = [n for n in ast.walk(ast.Module(body=node.body, type_ignores=[]))
                       if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("recoque")]
                assert not own, f"{p}:{node.lineno} guards an import of the project's own module"


def test_cli_is_one_package_with_a_module_per_command():
    cli = ROOT / "src" / "recoque" / "cli"
    names = {p.stem for p in cli.glob("*.py")}
    assert {"bench", "devices", "plan", "check", "compare", "validate"} <= names
    assert not list((ROOT / "bench").glob("cli_*.py")) and not list((ROOT / "planner").glob("cli_*.py"))
