"""The package's modules import one another without a cycle.

Every import counts: at module level, inside functions, and under
``TYPE_CHECKING``. Helpers depend on the narrow interface in ``_api.py``,
not on ``client.py`` (which imports them).
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hathora_async"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str) -> set[str]:
    """The package's modules that module ``name`` imports, however and wherever."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names = {f"{target}.{a.name}" for a in node.names} & MODULES.keys()
            # "from . import _constants" names a module; "from .x import y" imports x.
            found.update(names or ({target} & MODULES.keys()))
    return found - {name}


def test_the_walker_sees_the_edges_that_matter() -> None:
    # The walker itself, so that an empty graph cannot pass the test below.
    assert "hathora_async._api" in imports("hathora_async.pool")  # under TYPE_CHECKING
    assert "hathora_async.processes" in imports("hathora_async.client")  # in a function
    assert "hathora_async._constants" in imports("hathora_async.pool")  # from . import x


def test_imports_form_no_cycle() -> None:
    graph = {name: imports(name) for name in MODULES}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize(
    "module", ["processes", "rooms", "waiting", "prealloc", "pool", "_strays", "_api"]
)
def test_each_helper_imports_first_in_a_fresh_interpreter(module: str) -> None:
    code = f"import hathora_async.{module}"
    run = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True)
    assert run.returncode == 0, run.stderr.decode()
