"""The toolkit's shape, computed from the real source with `ast` (pure, fast): imports go one way, no circle, no
module over 400 lines, no function over 60, nothing imports the test bed, every module has its unit tests or a line
in docs/architecture.md; and ruff and mypy are clean.

The allow-lists below name today's exceptions, each with its reason; the restructure removes them. An entry that no
longer matches anything fails too, so the lists only shrink.

Regenerate the package diagram in docs/architecture.md: `.venv/bin/python -m tests.unit.test_architecture`.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"

# One way, left to right: a package imports only packages of a later layer, or itself. (docs/architecture.md)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tasks",),
    ("usecases",),
    ("ui",),
    ("deploy", "ops"),
    ("supply", "hosts"),
    ("release",),
    ("images",),
    ("docker", "registry"),
    ("config",),
    ("interrupts",),
    ("errors", "reporting"),
)
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
FORBIDDEN_ROOTS = ("dockerbed", "tests", "benchmarks")  # the toolkit never imports the test bed or the tests

# -- exceptions, each with its reason (none today: keep it that way, or say why here) --
# (importer package, imported package): why it still goes the wrong way.
LAYERING_ALLOWED: dict[tuple[str, str], str] = {}
# Import circles between modules (each the sorted modules of one strongly connected component); TYPE_CHECKING imports count.
CYCLES_ALLOWED: dict[tuple[str, ...], str] = {}
# (module of delivery/, the root it imports) for the test bed or the tests.
FORBIDDEN_ALLOWED: dict[tuple[str, str], str] = {}
MODULES_OVER: dict[str, str] = {}
# module:qualified name of a function over the limit.
FUNCTIONS_OVER: dict[str, str] = {}


# -- the import graph, from the source ---------------------------------------------------------------------
@dataclass(frozen=True)
class Module:
    name: str  # delivery.deploy.compose.handover, or tasks
    path: Path

    @property
    def package(self) -> str:
        """Its layer's name: the first part under delivery/ (deploy for delivery.deploy.compose.handover), or tasks."""
        parts = self.name.split(".")
        return parts[1] if parts[0] == "delivery" else parts[0]

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    def tree(self) -> ast.Module:
        return _parse(self.path)


@cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Module]:
    """Every module of delivery/ and of tasks (tasks.py, or a tasks/ package), by dotted name."""
    paths = sorted((ROOT / "delivery").rglob("*.py"))
    paths += [ROOT / "tasks.py"] if (ROOT / "tasks.py").is_file() else sorted((ROOT / "tasks").rglob("*.py"))
    found = {_module_name(path): Module(_module_name(path), path) for path in paths}
    found.pop("delivery", None)  # the root package holds nothing
    return found


def _resolve(name: str, known: Mapping[str, Module]) -> str | None:
    """The module `name` names (itself, or the package it is in), or None when it is not ours."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_names(module: Module) -> Iterator[tuple[str, int]]:
    """Every dotted name the module imports (at any depth, TYPE_CHECKING included), with its line."""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree()):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            yield source, node.lineno
            for alias in node.names:  # `from delivery.images import tags` imports the module delivery.images.tags
                yield f"{source}.{alias.name}", node.lineno


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Module -> the modules of ours it imports (not itself, not the packages that merely hold them)."""
    known = modules()
    graph: dict[str, frozenset[str]] = {}
    for name, module in known.items():
        targets: set[str] = set()
        for imported, _ in imported_names(module):
            target = _resolve(imported, known)
            if target is not None and target != name and not (name.startswith(target + ".") and known[target].is_package):
                targets.add(target)
        # `from delivery.images import tags` resolves both to delivery.images and delivery.images.tags: keep the module
        graph[name] = frozenset(t for t in targets if not any(o.startswith(t + ".") for o in targets))
    return graph


def package_graph() -> dict[str, set[str]]:
    """Package -> the other packages it imports."""
    known = modules()
    edges: dict[str, set[str]] = {module.package: set() for module in known.values()}
    for name, targets in import_graph().items():
        edges[known[name].package] |= {known[t].package for t in targets} - {known[name].package}
    return edges


def strongly_connected(graph: Mapping[str, frozenset[str]]) -> list[tuple[str, ...]]:
    """The import circles: each component of more than one module (Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def layering_violations() -> dict[tuple[str, str], list[str]]:
    """(importer package, imported package) -> the module imports that go against the layers."""
    known = modules()
    found: dict[tuple[str, str], list[str]] = {}
    for name, targets in import_graph().items():
        for target in sorted(targets):
            importer, imported = known[name].package, known[target].package
            if importer != imported and RANK[imported] <= RANK[importer]:
                found.setdefault((importer, imported), []).append(f"{name} -> {target}")
    return found


def functions(tree: ast.Module, prefix: str) -> Iterator[tuple[str, int]]:
    """(module:qualified name, lines) of every function and method, nested ones too."""
    def walk(node: ast.AST, scope: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                qualified = f"{scope}.{child.name}" if scope else child.name
                yield f"{prefix}:{qualified}", child.end_lineno - child.lineno + 1 if child.end_lineno else 1
                yield from walk(child, qualified)
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{scope}.{child.name}" if scope else child.name)

    yield from walk(tree, "")


# -- the checks ----------------------------------------------------------------------------------------------
def _stale(allowed: Mapping[Any, str], found: Container[Any]) -> list[Any]:
    """The allowed exceptions that no longer happen."""
    return [key for key in allowed if key not in found]


def test_the_circle_finder_finds_circles_and_only_them() -> None:
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a", "e"}), "e": frozenset({"d"}), "f": frozenset()}
    assert strongly_connected(graph) == [("a", "b", "c"), ("d", "e")]
    assert strongly_connected({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_every_package_is_in_a_layer() -> None:
    unplaced = sorted({module.package for module in modules().values()} - set(RANK))
    assert unplaced == [], f"packages in no layer: add them to LAYERS here and to docs/architecture.md: {unplaced}"


def test_no_import_circle_between_delivery_modules() -> None:
    cycles = strongly_connected(import_graph())
    assert [c for c in cycles if c not in CYCLES_ALLOWED] == [], "import circles (break them; see docs/architecture.md)"
    assert _stale(CYCLES_ALLOWED, cycles) == [], "these circles are gone: remove them from CYCLES_ALLOWED"


def test_imports_go_one_way_through_the_layers() -> None:
    found = layering_violations()
    new = {pair: imports for pair, imports in found.items() if pair not in LAYERING_ALLOWED}
    assert new == {}, "imports against the layers (tasks -> usecases -> ui -> deploy, ops -> ... -> errors): see docs/architecture.md"
    assert _stale(LAYERING_ALLOWED, found) == [], "these imports go the right way now: remove them from LAYERING_ALLOWED"


def test_deploy_strategies_do_not_import_each_other() -> None:
    """delivery/deploy/<strategy>/ (compose, swarm) may share only what lies below deploy/; the factory next to them chooses."""
    def strategy(name: str) -> str | None:
        parts = name.split(".")
        return parts[2] if len(parts) > 3 and parts[:2] == ["delivery", "deploy"] else None

    crossing = sorted(f"{name} -> {target}" for name, targets in import_graph().items() for target in targets
                      if strategy(name) and strategy(target) and strategy(name) != strategy(target))
    assert crossing == [], "a deploy strategy imports another: move what both need below deploy/ (hosts, release, docker)"


def test_every_allowed_exception_says_why() -> None:
    for allowed in (LAYERING_ALLOWED, CYCLES_ALLOWED, FORBIDDEN_ALLOWED, MODULES_OVER, FUNCTIONS_OVER):
        assert [key for key, reason in allowed.items() if not reason.strip()] == []


def test_the_toolkit_never_imports_the_test_bed_or_the_tests() -> None:
    found = {(name, imported.split(".")[0]) for name, module in modules().items() for imported, _ in imported_names(module)
             if imported.split(".")[0] in FORBIDDEN_ROOTS}
    assert sorted(found - set(FORBIDDEN_ALLOWED)) == []
    assert _stale(FORBIDDEN_ALLOWED, found) == [], "these imports are gone: remove them from FORBIDDEN_ALLOWED"


def test_no_module_over_400_lines() -> None:
    lengths = {name: len(module.path.read_text().splitlines()) for name, module in modules().items() if name.startswith("delivery.")}
    over = {name: lines for name, lines in lengths.items() if lines > MAX_MODULE_LINES}
    assert {name: lines for name, lines in over.items() if name not in MODULES_OVER} == {}
    assert _stale(MODULES_OVER, over) == [], f"these modules are {MAX_MODULE_LINES} lines or fewer now: remove them from MODULES_OVER"


def test_no_function_over_60_lines() -> None:
    lengths = dict(pair for name, module in modules().items() if name.startswith("delivery.") for pair in functions(module.tree(), name))
    over = {name: lines for name, lines in lengths.items() if lines > MAX_FUNCTION_LINES}
    assert {name: lines for name, lines in over.items() if name not in FUNCTIONS_OVER} == {}
    assert _stale(FUNCTIONS_OVER, over) == [], f"these are {MAX_FUNCTION_LINES} lines or fewer now: remove them from FUNCTIONS_OVER"


# -- the tools: ruff on the tree, mypy strict on delivery/ (config in pyproject.toml) --------------------------
def _tool(module: str) -> list[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed in this Python ({sys.executable}): run scripts/dev-env")
    return [sys.executable, "-m", module]


def test_ruff_is_clean() -> None:
    done = subprocess.run([*_tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_mypy_is_clean() -> None:
    done = subprocess.run(_tool("mypy"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


# -- docs/architecture.md: the generated diagram and the modules tested only on the test bed ------------------
DIAGRAM = re.compile(r"(<!-- packages diagram: generated.*?-->\n)(.*?)(<!-- end of packages diagram -->)", re.DOTALL)
BED_ONLY = re.compile(r"<!-- tested only on the test bed -->\n(.*?)<!-- end of tested only on the test bed -->", re.DOTALL)


def mermaid() -> str:
    """The package diagram of the real imports: layers top to bottom, an import against the layers dotted."""
    edges = package_graph()
    lines = ["```mermaid", "flowchart TD"]
    for rank, layer in enumerate(LAYERS):
        present = [package for package in layer if package in edges]
        if present:
            lines.append(f"  subgraph layer{rank} [\" \"]")
            lines += [f"    {package}" for package in present]
            lines.append("  end")
    for importer in sorted(edges, key=lambda p: (RANK.get(p, 99), p)):
        for imported in sorted(edges[importer], key=lambda p: (RANK.get(p, 99), p)):
            wrong = RANK.get(imported, 99) <= RANK.get(importer, 99)
            lines.append(f"  {importer} -. against the layers .-> {imported}" if wrong else f"  {importer} --> {imported}")
    lines.append("```")
    return "\n".join(lines) + "\n"


def test_the_package_diagram_in_the_docs_is_the_real_import_graph() -> None:
    found = DIAGRAM.search(DOC.read_text())
    assert found, f"{DOC.relative_to(ROOT)} has no generated packages diagram block"
    assert found.group(2) == mermaid(), "the diagram differs from the imports: run `.venv/bin/python -m tests.unit.test_architecture`"


def unit_tests_of(module: Module) -> list[Path]:
    """tests/unit/<its folder>/test_<name>.py, or test_<name>_<aspect>.py when its tests are split by aspect."""
    relative = module.path.relative_to(ROOT / "delivery")
    folder = ROOT / "tests" / "unit" / relative.parent
    return sorted([*folder.glob(f"test_{relative.stem}.py"), *folder.glob(f"test_{relative.stem}_*.py")])


def bed_only_modules() -> dict[str, str]:
    """The modules docs/architecture.md lists as tested only on the test bed, with why."""
    found = BED_ONLY.search(DOC.read_text())
    assert found, f"{DOC.relative_to(ROOT)} has no list of modules tested only on the test bed"
    listed = re.findall(r"^- `(delivery/[\w/]+\.py)`: (.+)$", found.group(1), re.MULTILINE)
    return dict(listed)


def test_every_module_has_unit_tests_or_a_line_saying_why_not() -> None:
    listed = bed_only_modules()
    ours = {str(m.path.relative_to(ROOT)): m for m in modules().values() if m.name.startswith("delivery.") and not m.is_package}
    untested = sorted(path for path, module in ours.items() if not unit_tests_of(module) and path not in listed)
    assert untested == [], "modules with no tests/unit/<package>/test_<module>.py and no line in docs/architecture.md"
    assert sorted(path for path in listed if path not in ours) == [], "docs/architecture.md lists modules that do not exist"
    assert sorted(path for path in listed if path in ours and unit_tests_of(ours[path])) == [], (
        "these have unit tests now: remove them from docs/architecture.md's list")


def write_diagram() -> bool:
    """Put the real diagram into docs/architecture.md; whether it changed."""
    text = DOC.read_text()
    found = DIAGRAM.search(text)
    if not found:
        raise SystemExit(f"{DOC.relative_to(ROOT)} has no `<!-- packages diagram: generated ... -->` block")
    updated = text[: found.start(2)] + mermaid() + text[found.end(2) :]
    DOC.write_text(updated)
    return updated != text


if __name__ == "__main__":
    print(f"{DOC.relative_to(ROOT)}: {'diagram updated' if write_diagram() else 'diagram already up to date'}")


def test_the_readme_layout_names_every_package() -> None:
    layout = (ROOT / "README.md").read_text().partition("## Layout\n")[2].partition("\n## ")[0]
    packages = {module.package for module in modules().values() if module.name.startswith("delivery.")}
    named = set(re.findall(r"^\s+(\w+)/\s", layout, re.MULTILINE)) | set(re.findall(r"(\w+)\.py", layout))
    assert sorted(packages - named) == [], "README.md's Layout section: add a line for each package (what it holds, what it may import)"
