"""Which package may import which, read from the source with :mod:`ast` (nothing imported).

- ``inference/`` and ``training/`` import nothing from ``dicom_node/`` (anywhere, not even
  inside a function): the model and its training stand on their own.
- The node's product modules never import ``training/``; the few dev-only commands that
  need it (listed in :data:`DEV_ONLY` with the reason) import it inside functions only.
- The benchmark harness is the top-level ``benchmarks/`` package; the node starts it
  from :data:`BENCHMARK_ENTRY` only, inside functions.
- The module-level imports among ``dicom_node`` modules form no cycle (imports inside
  functions and under ``if TYPE_CHECKING:`` do not run at import time and do not count).

docs/architecture.md draws the same rules.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: dicom_node modules that are development tools, not the product path: they may import
#: ``training`` but only inside functions (so the product never loads it).
DEV_ONLY: dict[str, str] = {
    "dicom_node.demo": "knee-node demo: synthesises the study the demo pushes",
    "dicom_node.cli": "the command line places the dev commands (synth, model train/"
    "evaluate) too: explicit imports inside functions, run only when those are invoked",
}


@dataclass(frozen=True)
class Import:
    """One import statement's target module and whether it runs when the module loads."""

    target: str
    names: tuple[str, ...]
    module_level: bool
    line: int


def module_name(path: Path) -> str:
    """Dotted module name of a source file under :data:`ROOT`."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> list[Import]:
    """Every import in ``path``, each marked module-level (runs at import) or not."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend(
                    Import(a.name, (), module_level, child.lineno) for a in child.names
                )
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                names = tuple(a.name for a in child.names)
                found.append(Import(base, names, module_level, child.lineno))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                visit(child, False)
                for orelse in child.orelse:
                    visit(orelse, module_level)
            else:
                visit(child, module_level)

    visit(tree, True)
    return found


def sources(package: str) -> list[Path]:
    """The ``.py`` files of a top-level package."""
    return sorted((ROOT / package).rglob("*.py"))


def _top(target: str) -> str:
    return target.split(".")[0]


def test_inference_and_training_do_not_import_the_node() -> None:
    offenders = [
        f"{module_name(p)}:{imp.line} imports {imp.target}"
        for package in ("inference", "training")
        for p in sources(package)
        for imp in imports_of(p)
        if _top(imp.target) == "dicom_node"
    ]
    assert offenders == []


def test_the_product_does_not_import_training() -> None:
    modules = {module_name(p): p for p in sources("dicom_node")}
    assert set(DEV_ONLY) <= set(modules), "a dev-only module listed here no longer exists"
    offenders = []
    for name, path in modules.items():
        for imp in imports_of(path):
            if _top(imp.target) != "training":
                continue
            if name not in DEV_ONLY:
                offenders.append(f"{name}:{imp.line} imports {imp.target} (product module)")
            elif imp.module_level:
                offenders.append(f"{name}:{imp.line} imports {imp.target} at module level")
    assert offenders == []


#: dicom_node modules that start the benchmark harness (``benchmarks/``, outside the
#: product package), inside functions only.
BENCHMARK_ENTRY: dict[str, str] = {
    "dicom_node.cli": "knee-node bench ...: the group's commands",
    "dicom_node.commands.demo": "knee-node bench node: throughput of an in-process node",
}


def test_the_benchmark_harness_lives_outside_the_product() -> None:
    assert not (ROOT / "dicom_node" / "bench.py").exists()
    assert not (ROOT / "dicom_node" / "benchmark").exists()
    assert (ROOT / "benchmarks" / "__init__.py").is_file()
    assert (ROOT / "benchmarks" / "results.json").is_file(), "the results JSON stays"
    offenders = []
    for package in ("dicom_node", "inference", "training"):
        for path in sources(package):
            name = module_name(path)
            for imp in imports_of(path):
                if _top(imp.target) != "benchmarks":
                    continue
                if name not in BENCHMARK_ENTRY:
                    offenders.append(f"{name}:{imp.line} imports {imp.target}")
                elif imp.module_level:
                    offenders.append(f"{name}:{imp.line} imports {imp.target} at module level")
    assert offenders == []


def module_graph() -> dict[str, set[str]]:
    """dicom_node module -> the dicom_node modules it imports at module level."""
    modules = {module_name(p): p for p in sources("dicom_node")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imp in imports_of(path):
            if not imp.module_level or _top(imp.target) != "dicom_node":
                continue
            targets = [f"{imp.target}.{n}" for n in imp.names if f"{imp.target}.{n}" in modules]
            if len(targets) < len(imp.names) or not imp.names:
                targets.append(imp.target)  # names defined in the module (or a package)
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path (first node repeated at the end), or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == grey:
                return stack[stack.index(nxt):] + [nxt]
            if colour[nxt] == white and (cycle := dfs(nxt)) is not None:
                return cycle
        stack.pop()
        colour[node] = black
        return None

    for start in sorted(graph):
        if colour[start] == white and (cycle := dfs(start)) is not None:
            return cycle
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_imports_of_tells_module_level_from_lazy(tmp_path: Path) -> None:
    src = ROOT / "dicom_node" / "pipeline.py"
    found = imports_of(src)
    assert any(i.target == "dicom_node.db.models" and i.module_level for i in found)
    assert not any(i.target == "dicom_node.context" and i.module_level for i in found)


def test_no_import_cycles_in_the_node() -> None:
    graph = module_graph()
    assert "dicom_node.pipeline" in graph and graph["dicom_node.pipeline"]
    assert find_cycle(graph) is None


#: What the independent full-leg renderer may never import (anywhere, even inside a
#: function): the training generators and the knee's independent renderer.
INDEPENDENT_LEG_FORBIDDEN = ("training.synth_leg", "training.synth", "training.independent",
                             "training.synth_dicom", "training.leg_data", "training.augment")


def _forbidden_for_independent_leg(target: str) -> bool:
    if target.startswith("training.independent_leg"):
        return False
    return any(target == f or target.startswith(f + ".") or target.startswith(f + "_")
               for f in INDEPENDENT_LEG_FORBIDDEN)


def test_forbidden_rule_reads_names_not_prefixes() -> None:
    assert _forbidden_for_independent_leg("training.synth_leg.anatomy")
    assert _forbidden_for_independent_leg("training.synth")
    assert _forbidden_for_independent_leg("training.independent.bones")
    assert not _forbidden_for_independent_leg("training.independent_leg.solids")
    assert not _forbidden_for_independent_leg("inference.leg.geometry")


def test_the_independent_leg_renderer_is_written_apart_from_the_generators() -> None:
    files = sorted((ROOT / "training" / "independent_leg").glob("*.py"))
    assert len(files) >= 5
    offenders = [f"{module_name(p)}:{imp.line} imports {imp.target}"
                 for p in files for imp in imports_of(p)
                 if _forbidden_for_independent_leg(imp.target)
                 or (imp.target == "training" and set(imp.names) & {"synth", "synth_leg",
                                                                     "independent"})]
    assert offenders == []


def test_no_training_code_imports_the_independent_leg_renderer() -> None:
    offenders = [f"{module_name(p)}:{imp.line} imports {imp.target}"
                 for p in sources("training") if "independent_leg" not in p.parts
                 for imp in imports_of(p) if imp.target.startswith("training.independent_leg")]
    assert offenders == []
