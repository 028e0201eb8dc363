"""Which project modules a stage runs: its module's imports, direct and transitive, read with ``ast``.

A stage's cache key covers the source of every module in that set, so no hand-kept list can miss one.
Nothing is imported to find them. Imports under ``if TYPE_CHECKING:`` are left out (they never run), and
so are imports of modules outside the project. The parent packages' ``__init__`` modules run whenever a
module is imported, so they are in the set too.

The sources are hashed once, when the package is imported (``snapshot``), before any of its modules runs: a
file edited later, while a run is under way, would otherwise key a stage with code the process never loaded.
The runner checks, when a stage ends, that its files still match (``changed_files``) and keeps nothing if not.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PROJECT = "pipeline"
DEFAULT_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the package
_SNAPSHOT: dict[Path, str] = {}  # a source file's sha256 when the package was imported


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path = DEFAULT_ROOT) -> None:
    """Hash every project source file under ``root`` now (the package's import; a file seen before keeps its
    first hash)."""
    for path in sorted((root / PROJECT).rglob("*.py")):
        _SNAPSHOT.setdefault(path.resolve(), _sha256(path))


def file_hash(path: Path) -> str:
    """A source file's hash as the snapshot took it, or as it is now for a file outside the snapshot."""
    found = _SNAPSHOT.get(path.resolve())
    return found if found is not None else _sha256(path)


def changed_files(hashes: dict[str, str], root: Path = DEFAULT_ROOT) -> list[str]:
    """The files of a ``code_hashes`` record whose content on disk differs from it now (or that are gone)."""
    changed = []
    for rel, digest in hashes.items():
        try:
            if _sha256(root / rel) != digest:
                changed.append(rel)
        except OSError:
            changed.append(rel)
    return changed


def module_file(name: str, root: Path) -> Path | None:
    """The source file of a project module (``pipeline.stages.tsne``), or None when it is not a module."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def start_file(name: str, root: Path) -> Path:
    """The file of the module a stage lives in: a project module, or (a test's toy stage) any importable one."""
    found = module_file(name, root)
    if found is None:
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise ValueError(f"no module {name} under {root} or on the path")
        found = Path(spec.origin)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every import statement that can run: at top level, in functions, in branches; not TYPE_CHECKING ones."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


@lru_cache(maxsize=512)
def _direct_imports(name: str, path: Path, mtime_ns: int) -> frozenset[str]:
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = _package_of(name, path)
    found: set[str] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        if node.level:
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        found.add(target)
        # ``from pkg import name`` imports the module pkg.name when there is one.
        found.update(f"{target}.{alias.name}" for alias in node.names)
    return frozenset(found)


def direct_imports(name: str, root: Path = DEFAULT_ROOT, packages: tuple[str, ...] = (PROJECT,)) -> set[str]:
    """Modules of ``packages`` (by default the project's) that ``name`` imports itself."""
    path = start_file(name, root)
    candidates = _direct_imports(name, path, path.stat().st_mtime_ns)
    return {c for c in candidates  # a package's ``from . import x`` names the package itself: not an edge
            if c != name and c.split(".")[0] in packages and module_file(c, root) is not None}


def closure(name: str, root: Path = DEFAULT_ROOT) -> list[str]:
    """``name``, every project module it imports directly or transitively, and their parent packages."""
    seen: set[str] = set()
    stack = [name]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        parts = current.split(".")
        parents = (".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        stack.extend(p for p in parents if module_file(p, root) is not None)
        stack.extend(direct_imports(current, root))
    return sorted(seen)


def relative_path(name: str, root: Path = DEFAULT_ROOT) -> str:
    path = start_file(name, root)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def code_hashes(name: str, root: Path = DEFAULT_ROOT, extra_files: tuple[str, ...] = ()) -> dict[str, str]:
    """{file relative to the root: sha256} for every module ``name`` runs, plus ``extra_files`` (paths relative
    to the root, for inputs that are not imports, such as a template)."""
    files = [relative_path(module, root) for module in closure(name, root)] + list(extra_files)
    return {rel: file_hash(root / rel) for rel in sorted(files)}  # an absolute path stays absolute


def import_graph(root: Path = DEFAULT_ROOT, packages: tuple[str, ...] = (PROJECT,)) -> dict[str, set[str]]:
    """Every module of ``packages`` (by default the project) and the modules of them it imports directly."""
    graph = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            graph[name] = direct_imports(name, root, packages)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles, each as the list of modules on it (empty when the graph is acyclic)."""
    found, state, path = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found
