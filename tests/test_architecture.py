"""The shape of the code: imports flow one way, from the commands down to the data types.

Read from the source (every import, at the top of a module or inside a function), so a lazy
import cannot hide a circle or a reach upwards.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import avatarcam

PACKAGE = Path(avatarcam.__file__).parent

# The top-level parts, each allowed to import only those after it: the commands, the live session
# and the batch runner; the frame chain; enrollment and profiles; the parts that make motion,
# pictures, sound and marks; the settings and the motion latent at the bottom.
LAYERS = ["cli", "tray", "doctor", "daemon", "batch", "offline", "control", "chain", "enroll", "profiles",
          "arkit", "engines", "training", "corpus", "render", "motion", "camera", "video", "provenance",
          "audio", "config", "latent", "errors", "avatarcam"]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("avatarcam",) + path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The avatarcam modules `name` imports (a name imported from a package counts as the
    package's own module unless it is a submodule)."""
    def resolve(target: str) -> str:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {resolve(t) for t in targets if t == "avatarcam" or t.startswith("avatarcam.")}
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def part(module: str) -> str:
    return module.split(".")[1] if "." in module else "avatarcam"


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                on_stack.discard(w)
                group.append(w)
            on_stack.discard(v)
            if group:
                found.append(sorted(group + [v]))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_every_part_has_a_place_in_the_layers():
    assert {part(m) for m in modules()} <= set(LAYERS)


def test_no_import_circles():
    assert circles(graph()) == []


def test_imports_only_flow_down():
    upward = sorted(f"{m} imports {t}" for m, targets in graph().items() for t in targets
                    if part(m) != part(t) and LAYERS.index(part(t)) < LAYERS.index(part(m)))
    assert upward == []


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path):
    """The checks themselves: a made-up circle is found, and so is render importing profiles lazily."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    probe = tmp_path / "x.py"
    probe.write_text("def f():\n    from avatarcam.profiles import load_profile\n")
    found = imports("avatarcam.render.x", probe, {"avatarcam.render.x": probe, "avatarcam.profiles": Path("p.py")})
    assert found == {"avatarcam.profiles"} and LAYERS.index("profiles") < LAYERS.index("render")
    edges = graph()  # relative imports, inside functions too (`from ..profiles import`, `from . import watermark`)
    assert "avatarcam.profiles" in edges["avatarcam.batch.worker"]
    assert "avatarcam.provenance.watermark" in edges["avatarcam.provenance.verify"]


def test_the_motion_runtime_never_names_torch():
    """torch is the training code's and the ONNX export's (above motion in LAYERS), never the
    runtime's: the live camera runs the model on numpy."""
    for path in (PACKAGE / "motion").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not [n for n in names if n.split(".")[0] == "torch"], f"{path.name} imports torch"


def test_the_runtime_loads_without_torch_or_the_training_code():
    """Importing the live path and choosing the motion model's runtime (numpy here) leaves torch,
    the training code and the ONNX export out of the process."""
    above = ("torch", "avatarcam.training", "avatarcam.engines")
    code = (
        "import json, sys\n"
        "import avatarcam.motion.diffusion, avatarcam.chain, avatarcam.daemon\n"
        "from avatarcam.motion.diffusion import DiffusionEngine\n"
        "DiffusionEngine(seed=0)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({above!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent, timeout=120)
    assert json.loads(out.stdout.splitlines()[-1]) == []

