"""The layering of docs/ARCHITECTURE.md: every module imports only from its own
layer or the layers below it (module-level, function-level and type-checking
imports alike), modules import each other without cycles, and no module but
the CLI imports a stage's module (the runner imports those by name)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Bottom up. A module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("augment", "augment.fs", "augment.names", "augment.data.errors")),
    ("config", ("augment.config",)),
    ("runtime", ("augment.runtime", "augment.distributed", "augment.lock")),
    ("records", ("augment.schemas", "augment.manifest", "augment.checkpoint")),
    ("runner", ("augment.stages", "augment.workdir", "augment.diagnostics", "augment.pipeline")),
    ("data", ("augment.data",)),
    ("io", ("augment.io",)),
    ("align", ("augment.align",)),
    ("domain", ("augment.groundtruth", "augment.judges", "augment.trained", "augment.sagan.model",
                "augment.sagan.sizes", "augment.sagan.losses", "augment.sagan.diffaug", "augment.sagan.smudge",
                "augment.sagan.generators", "augment.sagan.data", "augment.sagan.judge", "augment.sagan.apply",
                "augment.sagan.quality")),
    ("recognition", ("recognition",)),
    ("sagan stages", ("augment.sagan",)),
    ("tools", ("augment.edit", "augment.oracle", "augment.photo_edit", "augment.export", "augment.labelmap",
               "augment.report",
               "augment.summary")),
    ("validate", ("augment.validate",)),
    ("cli", ("augment.cli",)),
]


def module_files(root: Path = REPO) -> dict[str, Path]:
    """Dotted module name -> file, for every module of augment/ and recognition/."""
    out = {}
    for pkg in ("augment", "recognition"):
        for p in sorted((root / pkg).rglob("*.py")):
            parts = list(p.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = p
    return out


def layer_of(module: str) -> int:
    best, index = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, index = len(p), i
    assert index is not None, f"{module} is in no layer: add it to LAYERS and docs/ARCHITECTURE.md"
    return index


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[tuple[str, int]]:
    """(imported project module, line) for every import in the file, wherever it stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            # "from pkg import name": name is a submodule or an attribute of pkg
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add((name, node.lineno))
    return found


def graph(root: Path = REPO) -> dict[str, set[tuple[str, int]]]:
    modules = module_files(root)
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def upward_imports(root: Path = REPO) -> list[str]:
    """Every import of a module from a higher layer, as 'file:line: a (layer) imports b (layer)'."""
    bad = []
    for m, deps in sorted(graph(root).items()):
        for dep, line in sorted(deps):
            if dep in ("augment", "recognition"):
                continue  # the package itself (its __init__ holds only the version)
            if layer_of(dep) > layer_of(m):
                bad.append(f"{m.replace('.', '/')}:{line}: {m} ({LAYERS[layer_of(m)][0]}) imports {dep} "
                           f"({LAYERS[layer_of(dep)][0]})")
    return bad


def cycles(root: Path = REPO) -> list[list[str]]:
    """Strongly connected groups of more than one module."""
    edges = {m: {d for d, _ in deps} for m, deps in graph(root).items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    for m in module_files():
        layer_of(m)


def test_no_module_imports_from_a_layer_above_it():
    assert upward_imports() == []


def test_no_import_cycles():
    assert cycles() == []


def test_only_the_cli_imports_a_stage_module():
    from augment.stages import STAGES

    targets = {s.target.split(":")[0] for s in STAGES.values()}
    bad = [f"{m} imports {d} (line {line})" for m, deps in graph().items() for d, line in deps
           if d in targets and layer_of(m) != len(LAYERS) - 1]  # the CLI (top layer) may
    assert bad == []


def test_an_upward_import_is_caught(tmp_path):
    """The checks above can fail: a copy of the tree with one import added from the
    lowest layer to the highest is reported, with its file and line."""
    import shutil

    for pkg in ("augment", "recognition"):
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    fs = tmp_path / "augment" / "fs.py"
    fs.write_text(fs.read_text() + "\n\ndef _late():\n    from augment.cli import main  # noqa\n")
    bad = upward_imports(tmp_path)
    assert len(bad) == 1 and bad[0].startswith("augment/fs:") and "imports augment.cli (cli)" in bad[0]
    assert any("augment.fs" in g and "augment.cli" in g for g in cycles(tmp_path))


@pytest.mark.parametrize("name", ["augment.config", "augment.manifest", "augment.stages", "augment.data.celeba"])
def test_lower_layers_import_without_torch(name):
    """The bottom layers stay light: importing them does not import torch."""
    import subprocess
    import sys

    code = f"import sys, {name}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"
