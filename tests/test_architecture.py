"""The data flow is one direction: no import cycles, no stage reaches back to the report, and no import
goes against the declared order of the packages (LAYERS)."""

import ast
from collections import defaultdict
from pathlib import Path

import eitp_bench

ROOT = Path(eitp_bench.__file__).parent
LOWER_STAGES = ("theory", "workloads", "energy")

# The packages in import order, bottom first: a module may import its own package and the layers below
# its own, never one above (nor another package of its own layer). Read upwards it is the data flow
# suite → runner → workloads (inside energy windows) → records → store → analysis → report, with each
# driver above what it drives: everyone reads the suite, so it is the lowest stage; the runner starts the
# workloads inside energy windows and hands their records to the store, so it sits above all three;
# analysis reads the store; report renders analysis; exporters, commands and cli are the top.
# A new package or top-level module must be placed here (the test below says so).
LAYERS = (
    # the shared vocabulary, flat at the top of eitp_bench/ (the package itself: __version__)
    ("eitp_bench", "errors", "flags", "names", "records", "provenance", "display", "file_kinds", "process_tree",
     "allocator"),
    ("suite",),          # what to run: schema, safe YAML, rules, problems, the arm registry
    ("hardware",),       # the machine: detection, published profiles, state
    ("energy",),         # meters and energy windows
    ("theory",),         # physical floors and bounds (reads RAPL's unit for the derivation)
    ("workloads",),      # the arms' training, evaluation and generation, run inside energy windows
    ("distributed",),    # ranks, placement, gathering their energy
    ("store",),          # records kept and read back
    ("runner",),         # repetitions in fresh processes: suite → workloads → records → store
    ("analysis",),       # the only judge: frames from the store → verdicts
    ("report",),         # renders analysis, never judges
    ("exporters",),      # MLflow, OpenMetrics: read the store, analysis and the report
    ("commands",),       # one module per CLI command
    ("cli",),
)
# The root package's lazy `EnergyMonitor` is the library's public face, not a step of the flow.
FACADE = "eitp_bench"


def import_graph() -> dict[str, set[str]]:
    """Module → eitp_bench modules it imports, function-level imports included."""
    modules = {".".join(("eitp_bench",) + f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for f in ROOT.rglob("*.py")}
    graph = defaultdict(set)
    for f in ROOT.rglob("*.py"):
        mod = ".".join(("eitp_bench",) + f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("eitp_bench"):
                # `from pkg import submodule` depends on the submodule; `from mod import name` on mod
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                targets = subs if len(subs) == len(node.names) else [node.module] + subs
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[mod].update(t for t in targets if t in modules and t != mod)
    return {m: graph[m] for m in modules}


def test_no_lower_stage_imports_the_report():
    bad = [(m, d) for m, deps in import_graph().items() for d in deps
           if m.split(".")[1:2] and m.split(".")[1] in LOWER_STAGES and d.startswith("eitp_bench.report")]
    assert bad == []


def test_no_import_cycles():
    graph = import_graph()
    # package __init__ modules that only re-export are not edges of the data flow
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for dep in graph[node]:
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert cycles == []


def _layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_package_is_placed_in_the_layers():
    rank = {name for layer in LAYERS for name in layer}
    unplaced = sorted({_layer_of(m) for m in import_graph()} - rank)
    assert unplaced == [], f"place these in tests/test_architecture.py LAYERS: {unplaced}"


def against_the_order(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs whose imported module's package is above, or beside, the importer's."""
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    bad = []
    for module, deps in graph.items():
        if module == FACADE:
            continue
        own = _layer_of(module)
        for dep in deps:
            theirs = _layer_of(dep)
            if theirs != own and rank[theirs] >= rank[own] and not (rank[theirs] == rank[own] == 0):
                bad.append((module, dep))
    return sorted(bad)


def test_no_import_goes_against_the_declared_order():
    assert against_the_order(import_graph()) == []


def test_the_order_check_catches_an_arrow_against_the_flow():
    # The check itself must fail where it should: the suite reaching into the workloads (the arrow this
    # layout removed) and analysis reading the report.
    graph = import_graph()
    graph["eitp_bench.suite.schema"] = graph["eitp_bench.suite.schema"] | {"eitp_bench.workloads.tasks"}
    graph["eitp_bench.analysis.claims"] = graph["eitp_bench.analysis.claims"] | {"eitp_bench.report.build"}
    assert against_the_order(graph) == [("eitp_bench.analysis.claims", "eitp_bench.report.build"),
                                        ("eitp_bench.suite.schema", "eitp_bench.workloads.tasks")]


def test_the_suite_names_arms_without_importing_the_workloads():
    suite_imports = {d for m, deps in import_graph().items() if _layer_of(m) == "suite" for d in deps}
    assert "eitp_bench.suite.arms" in suite_imports  # the registry the suite checks arm names against
    assert not any(_layer_of(d) == "workloads" for d in suite_imports)


def test_no_module_name_repeats_its_folder():
    repeats = [str(f.relative_to(ROOT)) for f in ROOT.rglob("*.py")
               if f.parent != ROOT and f.stem.startswith(f.parent.name + "_")]
    assert repeats == []


def test_the_top_holds_only_packages_cli_and_the_shared_vocabulary():
    loose = sorted(f.stem for f in ROOT.glob("*.py") if f.stem not in ("__init__", "cli"))
    assert loose == sorted(LAYERS[0][1:])
