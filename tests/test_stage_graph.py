"""The stage graph: keys that follow every module a stage runs, no stage importing another, no import cycle,
torch only where a network runs, and the README's graph in step with the declarations."""

import ast
import re
import shutil
from pathlib import Path

import pytest

from helpers import ROOT
from pipeline.engine import codegraph
from pipeline.engine.config import Config
from pipeline.registry import STAGES, describe
from pipeline.engine.runner import Runner, explain_change

STAGE_DIR = ROOT / "pipeline" / "stages"


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory) -> Path:
    """A copy of the package to edit: the tests never touch the real sources."""
    root = tmp_path_factory.mktemp("code")
    shutil.copytree(ROOT / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def all_modules(root: Path) -> list[str]:
    return sorted(codegraph.import_graph(root))


def test_keys_follow_every_module_a_stage_runs_and_only_those(code_copy):
    """Append a comment to each project module in turn: exactly the stages that import it, directly or not,
    get a new key, and the reason names that module."""
    def record(runner: Runner, stage) -> dict:  # a key's record, as the lock file keeps it
        return {"params": {}, "code": runner.code(stage), "fingerprint": {}, "upstream": {}}

    runner = Runner(Config(out=str(code_copy / "out")), STAGES, code_root=code_copy)
    before = {stage.name: record(runner, stage) for stage in STAGES}
    closures = {stage.name: set(codegraph.closure(stage.module, code_copy)) for stage in STAGES}
    assert closures["tsne"] >= {"pipeline.stages.tsne", "pipeline.methods.knn", "pipeline.pictures.figures", "pipeline.imaging.manifest"}
    assert "pipeline.methods.map_heads" in closures["export"] and "pipeline.imaging.features" in closures["export"]
    touched_somewhere = 0
    for module in all_modules(code_copy):
        path = codegraph.module_file(module, code_copy)
        original = path.read_bytes()
        path.write_bytes(original + b"\n# an edit\n")
        try:
            fresh = Runner(Config(out=str(code_copy / "out")), STAGES, code_root=code_copy)
            rel = path.relative_to(code_copy).as_posix()
            for stage in STAGES:
                after = record(fresh, stage)
                if module in closures[stage.name]:
                    touched_somewhere += 1
                    assert after["code"] != before[stage.name]["code"], (stage.name, module)
                    assert explain_change(before[stage.name], after) == [f"code changed: {rel}"], (stage.name, module)
                else:
                    assert after == before[stage.name], f"{stage.name} does not import {module}"
        finally:
            path.write_bytes(original)
    assert touched_somewhere >= 60


def test_keys_hash_the_sources_as_the_process_loaded_them(tmp_path):
    """The package's sources are hashed when it is imported: an edit made later does not change the key the
    running process computes (it runs the code it loaded), and ``changed_files`` names the edited file."""
    assert (ROOT / "pipeline" / "engine" / "runner.py").resolve() in codegraph._SNAPSHOT, "the real package was snapshotted"
    pkg = tmp_path / "pipeline"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("x = 1\n")
    codegraph.snapshot(tmp_path)
    loaded = codegraph.code_hashes("pipeline.a", tmp_path)
    (pkg / "a.py").write_text("x = 2\n")
    assert codegraph.code_hashes("pipeline.a", tmp_path) == loaded
    assert codegraph.changed_files(loaded, tmp_path) == ["pipeline/a.py"]
    assert codegraph.changed_files({"pipeline/gone.py": "0" * 64}, tmp_path) == ["pipeline/gone.py"]


def test_a_type_checking_import_is_not_code_that_runs(tmp_path):
    pkg = tmp_path / "pipeline"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n"
                              "def f():\n    from .c import g\n")
    for name in ("b", "c"):
        (pkg / f"{name}.py").write_text("")
    assert codegraph.closure("pipeline.a", tmp_path) == ["pipeline", "pipeline.a", "pipeline.c"]


def stage_imports(path: Path) -> list[str]:
    """Every module a stage file imports, resolved to dotted names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = {0: "", 1: "pipeline.stages", 2: "pipeline"}[node.level]
            target = ".".join(p for p in (base, node.module) if p)
            found += [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def test_no_stage_imports_another_and_the_package_has_no_cycle():
    stage_modules = {f"pipeline.stages.{p.stem}" for p in STAGE_DIR.glob("*.py") if p.stem != "__init__"}
    assert {stage.module for stage in STAGES} == stage_modules, "one file per stage, named after it"
    for stage in STAGES:
        assert stage.module == f"pipeline.stages.{stage.name}", stage.name
    for path in STAGE_DIR.glob("*.py"):
        others = stage_modules - {f"pipeline.stages.{path.stem}"}
        assert not others & set(stage_imports(path)), path.name
    assert codegraph.cycles(codegraph.import_graph(ROOT)) == []
    looped = {"pipeline.a": {"pipeline.b"}, "pipeline.b": {"pipeline.a"}}
    assert codegraph.cycles(looped) == [["pipeline.a", "pipeline.b", "pipeline.a"]], "the check can fail"


TORCH_FREE = ("engine.artifacts", "engine.codegraph", "engine.config", "pictures.figures", "imaging.manifest",
              "methods.knn", "methods.pca_fit", "methods.quality", "engine.record", "engine.runner",
              "methods.sampling", "engine.stage", "imaging.images", "imaging.storage", "imaging.decoding",
              "imaging.hub", "analyses.backbone_comparison", "analyses.probes", "methods.kmeans", "methods.tsne_fit",
              "methods.patch_pca")


@pytest.mark.parametrize("name", TORCH_FREE)
def test_helpers_do_not_import_torch(name):
    """torch is imported only where a network runs (extraction, the map heads, the export) and in ``accel`` (the
    analyses' GPU path), which the helpers import inside the functions that use it, never at import time."""
    closure = codegraph.closure(f"pipeline.{name}", ROOT)
    for module in [m for m in closure if m not in ("pipeline.methods.accel", "pipeline.imaging.devices")]:
        path = codegraph.module_file(module, ROOT)
        top_level = [n for n in ast.parse(path.read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top_level for a in n.names] + [n.module or "" for n in top_level
                                                                if isinstance(n, ast.ImportFrom)]
        assert not any(n.split(".")[0] == "torch" for n in names), module
    assert "pipeline.imaging.features" not in closure and "pipeline.methods.map_heads" not in closure


def test_planning_a_run_never_imports_torch():
    """``embdeck status`` and a warm run import every stage module: none may pull torch in at import time."""
    import subprocess
    import sys

    code = "import sys, pipeline.cli, pipeline.registry, pipeline.engine.runner; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_readme_shows_the_graph_the_declarations_make():
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"<!-- embdeck graph -->\n```text\n(.*?)```\n<!-- /embdeck graph -->", readme, re.S)
    assert shown, "README's How it works shows `embdeck graph` between the markers"
    assert shown.group(1) == describe(STAGES), "run `embdeck graph` and paste its output into the README"


def test_every_declared_input_exists_upstream():
    from pipeline.engine.stage import Stage

    Runner(Config(), STAGES)  # checks every declaration
    broken = Stage("broken", lambda ctx: {}, inputs=("pca.nothing",))
    with pytest.raises(ValueError, match="declares no output 'nothing'"):
        Runner(Config(), [*STAGES, broken])


PACKAGES = ("pipeline", "report", "bench")


def test_no_import_cycle_in_pipeline_report_or_bench():
    """Lazy imports count: report/placed.py and report/render.py once imported each other, one inside a function."""
    graph = codegraph.import_graph(ROOT, PACKAGES)
    assert {name.split(".")[0] for name in graph} == set(PACKAGES)
    assert codegraph.cycles(graph) == []
    assert "report.render" in graph["pipeline.cli"], "edges across the packages are seen"


def test_only_the_registry_imports_a_stage_module():
    """A stage module is a declaration and a short function: its helpers live in methods/, analyses/, pictures/
    and imaging/, where the bench, the CLI and ``embdeck place`` import them."""
    graph = codegraph.import_graph(ROOT, PACKAGES)
    stage_modules = {f"pipeline.stages.{p.stem}" for p in STAGE_DIR.glob("*.py") if p.stem != "__init__"}
    outside = {module: sorted(targets & stage_modules) for module, targets in graph.items()
               if not module.startswith("pipeline.stages") and module != "pipeline.registry"}
    assert {module: found for module, found in outside.items() if found} == {}


def test_the_package_keeps_few_modules_at_its_top_level():
    top = sorted(p.stem for p in (ROOT / "pipeline").glob("*.py") if p.stem != "__init__")
    assert top == ["cli", "demo", "new_images", "registry"]
    assert max(len(p.read_text().splitlines()) for p in (ROOT / "pipeline").rglob("*.py")) <= 400
