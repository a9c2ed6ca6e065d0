"""The package's layout rules (docs/architecture.md), checked on the source without importing TensorFlow."""

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

from tfdeploy._lazy import MOVED

PACKAGE = Path(__file__).resolve().parents[2] / "tfdeploy"
HEAVY = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "tensorflow_serving", "ai_edge_litert",
         "litert_quantizer", "tflite_runtime", "grpc", "sklearn")
MAX_FUNCTION_LINES = 60
LENGTH_REASON = "Long because"  # a function may exceed the limit if its docstring says why


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every import statement outside ``if TYPE_CHECKING:``."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            found.append((node.lineno, str(node.args[0].value), []))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_only_the_backend_imports_tensorflow_keras_tfmot_or_a_tflite_runtime():
    offenders = []
    for name, path in SOURCES.items():
        if name == "tfdeploy.backend" or name.startswith("tfdeploy.backend."):
            continue
        for line, module, _ in imports(ast.parse(path.read_text())):
            if module.split(".")[0] in HEAVY:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_the_ban_sees_imports_inside_functions_and_import_module_calls():
    source = ("def f():\n    import tensorflow as tf\n"
              "def g():\n    importlib.import_module('ai_edge_litert.interpreter')\n"
              "if TYPE_CHECKING:\n    import keras\n")
    modules = [module for _, module, _ in imports(ast.parse(source))]
    assert modules == ["tensorflow", "ai_edge_litert.interpreter"]


def import_graph() -> dict[str, set[str]]:
    """Module -> tfdeploy modules it imports (at module level or in functions); a package counts for its modules."""
    graph: dict[str, set[str]] = {}
    for name, path in SOURCES.items():
        edges = set()
        for _, module, names in imports(ast.parse(path.read_text())):
            if not module.startswith("tfdeploy"):
                continue
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in SOURCES] or [module]
            for target in targets:
                parts = target.split(".")
                edges.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))  # parents' __init__ run too
        graph[name] = {e for e in edges if e in SOURCES and e != name and not name.startswith(e + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring."""
    body = node.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return node.end_lineno - body[0].lineno + 2  # + the def line


def test_functions_are_short_or_say_why():
    long = []
    for name, path in SOURCES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and body_lines(node) > MAX_FUNCTION_LINES:
                if LENGTH_REASON not in (ast.get_docstring(node) or ""):
                    long.append(f"{name}.{node.name}: {body_lines(node)} lines")
    assert not long, "\n".join(long)


def test_packages_follow_the_flow():
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert {"backend", "model", "compression", "serving", "measure", "cli"} <= packages
    assert not packages & {"compress", "export", "verify", "bench", "deploy"}, "those names are public functions"
    assert (PACKAGE / "compression" / "recipes" / "__init__.py").is_file()


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_import_with_a_deprecation_warning(old):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)
    for target in MOVED[old]:
        new = importlib.import_module(target)
        public = [n for n in vars(new) if not n.startswith("_")]
        assert all(getattr(module, n) is getattr(new, n) for n in public if n in vars(module))


def test_old_paths_keep_the_names_users_imported():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from tfdeploy.recipes import DEFAULT_DEPLOY_RECIPES, Int8Granularity, IoDtype, Recipe, VersionPolicy
        from tfdeploy.serving_export import ExportConfig, export
        from tfdeploy.benchmark import BenchConfig, bench, rehearse_hot_swap
        from tfdeploy.warmup import read_warmup, write_warmup
        from tfdeploy.coldstart import replay_warmup
    import tfdeploy

    assert Recipe is tfdeploy.Recipe and VersionPolicy is tfdeploy.VersionPolicy and export is tfdeploy.export
    assert rehearse_hot_swap is tfdeploy.rehearse_hot_swap and bench is tfdeploy.bench and BenchConfig is tfdeploy.BenchConfig
    assert {IoDtype, Int8Granularity, ExportConfig, read_warmup, write_warmup, replay_warmup} and DEFAULT_DEPLOY_RECIPES


def test_public_api_resolves():
    import tfdeploy

    for name in tfdeploy.__all__:
        assert getattr(tfdeploy, name) is not None, name
