"""The README's architecture map lists every module of the package, in its folder, and nothing
that is not there."""

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]


def mapped_modules() -> set[str]:
    """Paths like `t2i_keras/data/pairs.py` named in the map's `t2i_keras/` block."""
    text = (REPO / "README.md").read_text()
    block = text.split("## How it fits together", 1)[1].split("```", 2)[1]
    found, folders = set(), []
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        entry = line.strip().split("   ", 1)[0]
        if not entry or indent % 2:
            continue
        depth = indent // 2
        folders = folders[:depth]
        if entry.endswith("/"):
            folders.append(entry)
            continue
        if not folders or folders[0] != "t2i_keras/":
            continue
        for name in re.findall(r"[\w.]+\.py", entry):
            found.add("".join(folders) + name)
    return found


def package_modules() -> set[str]:
    package = REPO / "t2i_keras"
    return {
        str(path.relative_to(REPO))
        for path in package.rglob("*.py")
        if path.name != "__init__.py" or path.parent == package
    }


def test_the_map_names_every_module_in_its_folder():
    assert mapped_modules() == package_modules()
