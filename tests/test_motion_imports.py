"""The motion runtime's place in the import graph: `avatarcam.motion` runs the model and knows
nothing of how it is trained or exported (`avatarcam.training`, `avatarcam.engines`, torch), and
its modules import each other one way only."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

MOTION = Path(__file__).resolve().parents[1] / "avatarcam" / "motion"
ABOVE_THE_RUNTIME = ("torch", "avatarcam.training", "avatarcam.engines")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (a lazy import is an import)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .. import latent, from .network import Config
                package = "avatarcam.motion".rsplit(".", node.level - 1)[0]
                base = f"{package}.{base}" if base else package
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {f"avatarcam.motion.{p.stem}": p for p in MOTION.glob("*.py") if p.stem != "__init__"}
    return {name: _imports(path) & set(modules) for name, path in modules.items()}


def test_motion_modules_import_each_other_without_a_circle():
    graph = _graph()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import circle: " + " -> ".join((*path[path.index(name):], name))
        if name not in done:
            for dep in graph[name]:
                visit(dep, (*path, name))
            done.add(name)

    for name in graph:
        visit(name, ())
    assert {"avatarcam.motion.diffusion", "avatarcam.motion.runtime"} <= done


def test_motion_source_never_names_training_export_or_torch():
    for path in MOTION.glob("*.py"):
        upward = {m for m in _imports(path) if m.startswith(ABOVE_THE_RUNTIME)}
        assert not upward, f"{path.name} imports {sorted(upward)}"


def test_the_runtime_loads_without_torch_or_the_training_code():
    """Importing the live path and choosing the motion model's runtime (numpy here) leaves torch,
    the training code and the ONNX export out of the process."""
    code = (
        "import json, sys\n"
        "import avatarcam.motion.diffusion, avatarcam.chain, avatarcam.daemon\n"
        "from avatarcam.motion.diffusion import DiffusionEngine\n"
        "DiffusionEngine(seed=0)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({ABOVE_THE_RUNTIME!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=MOTION.parents[1], timeout=120)
    assert json.loads(out.stdout.splitlines()[-1]) == []
