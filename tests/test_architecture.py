"""The data flow is one direction: no import cycles, and no stage reaches back to the report."""

import ast
from collections import defaultdict
from pathlib import Path

import eitp_bench

ROOT = Path(eitp_bench.__file__).parent
LOWER_STAGES = ("theory", "workloads", "energy")


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
