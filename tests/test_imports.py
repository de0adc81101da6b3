"""The package's import graph: no cycle, no import inside a function, and every import points
down the layers the README's map describes (cli -> demo -> evaluation -> training -> serving export
-> metrics -> data -> models, text -> config -> constant lists and utilities)."""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "t2i_keras"

# Lower numbers are lower layers; a module may import its own layer or lower ones.
LAYERS = {
    "t2i_keras.utils": 0,
    "t2i_keras.models.kinds": 0,
    "t2i_keras.data.kinds": 0,
    "t2i_keras.serving.signatures": 0,
    "t2i_keras.serving.client": 0,
    "t2i_keras.config": 1,
    "t2i_keras.models": 2,
    "t2i_keras.text": 2,
    "t2i_keras.data": 3,
    "t2i_keras.metrics": 4,
    "t2i_keras.serving": 5,
    "t2i_keras.training": 6,
    "t2i_keras.evaluation": 7,
    "t2i_keras.demo": 8,
    "t2i_keras.cli": 9,
    "t2i_keras.__main__": 9,
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: pathlib.Path):
    """(imported t2i_keras module, line, at module level?) for each import in the file."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import mod` imports the module pkg.mod when there is one.
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                for a in node.names
            ]
        else:
            continue
        for name in names:
            if name.startswith("t2i_keras.") or name == "t2i_keras":
                yield name, node.lineno, id(node) in top_level


def graph() -> dict[str, set[str]]:
    return {
        name: {imported for imported, _, _ in imports(path) if imported != name}
        for name, path in MODULES.items()
    }


def layer(module: str) -> int:
    owner = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[owner]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle():
    assert find_cycle(graph()) is None


def test_no_package_import_inside_a_function():
    late = [
        f"{name}:{line} imports {imported}"
        for name, path in MODULES.items()
        for imported, line, top in imports(path)
        if not top
    ]
    assert not late, late


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_the_layers(name):
    if name == "t2i_keras":
        return  # the root imports nothing at module level: its exports load lazily
    upward = [m for m in graph()[name] if m != "t2i_keras" and layer(m) > layer(name)]
    assert not upward, f"{name} (layer {layer(name)}) imports higher layers: {upward}"


@pytest.mark.parametrize("module", ["t2i_keras", "t2i_keras.serving.client", "t2i_keras.config"])
def test_light_modules_load_without_tensorflow_or_keras(module):
    heavy = "('tensorflow', 'keras')"
    code = f"import sys, {module}; print(sorted(m for m in {heavy} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stderr[-2000:]
