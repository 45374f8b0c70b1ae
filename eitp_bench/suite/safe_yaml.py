"""A safe YAML reader for suites: plain data only, bounded in size, refused whole when it is not.

PyYAML's safe_load is safe against code execution but not against everything a hostile or broken
file can do: a 1 KB "billion laughs" anchor bomb expands into gigabytes once dumped to JSON, a
circular anchor makes a structure that contains itself (JSON and pydantic recurse forever), 500
levels of nesting exhaust Python's recursion in PyYAML's own composer, and a duplicate key silently
lets the last value win. So a suite is read in steps, each refusing with a `Problem`:

1. bytes: at most MAX_FILE_BYTES, and UTF-8;
2. events (PyYAML's parser keeps its own stack, so this never recurses): nesting at most MAX_DEPTH;
3. nodes (before any Python object is built): no cycle, at most MAX_NODES values once every alias
   is expanded, no duplicate key, only the plain tags (str, int, float, bool, null, list, mapping);
4. objects: built by SafeLoader from nodes that passed, and then no NaN or infinity anywhere.
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional

import yaml

from eitp_bench.suite.problems import Problem

MAX_FILE_BYTES = 1 << 20  # 1 MiB: the bundled suites are under 3 kB
MAX_DEPTH = 16  # nesting of lists and mappings, aliases expanded (a suite needs 4)
MAX_NODES = 100_000  # values once every alias is expanded (a suite has a few hundred)

_TAG = "tag:yaml.org,2002:"
PLAIN_TAGS = {_TAG + t for t in ("null", "bool", "int", "float", "str", "seq", "map")}
_MERGE = _TAG + "merge"


class _SuiteLoader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3`, `5e-5`, `1E-4` as numbers, as YAML 1.2 and people do.

    YAML 1.1 (PyYAML) only reads an exponent with a dot (`1.0e-3`), so a learning rate written
    the usual way became the string "1e-3" and was refused as "not a valid number". Only plain
    (unquoted) scalars are resolved: `"1e-3"` stays a string, and booleans are untouched.
    """


_SuiteLoader.add_implicit_resolver(
    _TAG + "float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class YamlRefused(Exception):
    """The text cannot be read as a suite at all; `problem` says why."""

    def __init__(self, problem: Problem):
        super().__init__(problem.text)
        self.problem = problem


def decode(data: bytes) -> str:
    """The text of a suite file: at most MAX_FILE_BYTES of UTF-8 (a BOM is allowed)."""
    if len(data) > MAX_FILE_BYTES:
        raise YamlRefused(Problem("", f"the file is larger than {MAX_FILE_BYTES} bytes (1 MiB); a suite is a few kB"))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = data[err.start:err.start + 1].hex()
        raise YamlRefused(Problem(
            "", f"the file is not UTF-8 text (byte 0x{bad} at offset {err.start}); save it as UTF-8"
        )) from None


def load_plain(text: str, *, top_level: bool = True) -> Any:
    """The plain data of one YAML document, or YamlRefused naming the first reason it is refused.

    top_level: the document must be a mapping (a suite file); False for a `--set` value.
    """
    _check_depth(text)
    loader = _SuiteLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as err:
            raise YamlRefused(Problem("", _syntax_message(err))) from None
        except RecursionError:  # pragma: no cover - _check_depth refuses deep nesting first
            raise YamlRefused(Problem("", f"YAML nested deeper than {MAX_DEPTH} levels")) from None
        if node is None:
            return {} if top_level else None
        _check_nodes(node)
        try:
            data = loader.construct_document(node)
        except yaml.YAMLError as err:
            raise YamlRefused(Problem("", _syntax_message(err))) from None
        except ValueError as err:  # an integer of thousands of digits (Python's int() limit), and the like
            raise YamlRefused(Problem("", f"a value YAML cannot turn into data: {str(err).split(';')[0]}")) from None
    finally:
        loader.dispose()
    if top_level and not isinstance(data, dict):
        raise YamlRefused(Problem(
            "", f"expected a mapping of settings at the top, got {type(data).__name__}; write the suite as `key: value` lines"
        ))
    return data


def non_finite(data: Any, path: str = "") -> list[Problem]:
    """Every NaN or infinity in plain data, by dotted path (a finite number is expected everywhere)."""
    found: list[Problem] = []
    stack = [(path, data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            found.append(Problem(where or "(top level)", "expected a finite number", value))
        elif isinstance(value, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}.{i}" if where else str(i), v) for i, v in enumerate(value))
    return sorted(found, key=lambda p: p.field)


def _syntax_message(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.reader.ReaderError):  # a character YAML does not allow (NUL, other controls)
        return (f"YAML syntax error at character {err.position}: the control character #x{err.character:04x} "
                "is not allowed in YAML; remove it")
    mark = getattr(err, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"YAML syntax error at{where}: {problem}"


def _check_depth(text: str) -> None:
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_SuiteLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1
                    raise YamlRefused(Problem(
                        "", f"YAML nested deeper than {MAX_DEPTH} levels (at line {line}); a suite needs 4"
                    ))
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as err:
        raise YamlRefused(Problem("", _syntax_message(err))) from None


def _key_text(node: yaml.Node) -> Optional[str]:
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _check_nodes(root: yaml.Node) -> None:
    """Cycles, expanded size and depth, duplicate keys and tags, on the node graph (no recursion)."""
    size: dict[int, int] = {}  # id(node) → values it expands to
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str, bool]] = [(root, "", False)]
    while stack:
        node, path, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(c)] for c, _ in kids)
            depth[key] = (1 + max((depth[id(c)] for c, _ in kids), default=0)) if kids else 0
            open_nodes.discard(key)
            if size[key] > MAX_NODES:
                raise YamlRefused(Problem(
                    path or "(top level)",
                    f"holds more than {MAX_NODES} values once its YAML aliases are expanded (a suite has a few "
                    "hundred; an alias bomb?); write the values out",
                ))
            if depth[key] > MAX_DEPTH:
                raise YamlRefused(Problem(
                    path or "(top level)", f"nested deeper than {MAX_DEPTH} levels once its aliases are expanded"
                ))
            continue
        if key in size:
            continue  # an alias of a node already checked
        if key in open_nodes:
            raise YamlRefused(Problem(
                path or "(top level)",
                f"a circular YAML anchor (line {node.start_mark.line + 1}): a value cannot contain itself",
            ))
        if node.tag not in PLAIN_TAGS and node.tag != _MERGE:
            tag = node.tag.replace(_TAG, "!!")
            raise YamlRefused(Problem(
                path or "(top level)",
                f"the YAML tag {tag} is not allowed (line {node.start_mark.line + 1}); a suite holds plain "
                "strings, numbers, booleans, lists and mappings (quote dates and other text)",
            ))
        if isinstance(node, yaml.MappingNode):
            _check_keys(node, path)
        open_nodes.add(key)
        stack.append((node, path, True))
        for child, name in reversed(_children(node)):
            stack.append((child, f"{path}.{name}" if path else name, False))


def _children(node: yaml.Node) -> list[tuple[yaml.Node, str]]:
    if isinstance(node, yaml.SequenceNode):
        return [(c, str(i)) for i, c in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        out = []
        for k, v in node.value:
            out.append((k, "(key)"))
            out.append((v, _key_text(k) or "(key)"))
        return out
    return []


def _check_keys(node: yaml.MappingNode, path: str) -> None:
    seen: dict[str, int] = {}
    for k, _ in node.value:
        if k.tag == _MERGE:
            continue  # `<<: *base` merges defaults; keys written here override them, as YAML intends
        text = _key_text(k)
        if text is None:
            raise YamlRefused(Problem(
                path or "(top level)", f"a key that is a list or mapping (line {k.start_mark.line + 1}); keys are names"
            ))
        dotted = f"{path}.{text}" if path else text
        if text in seen:
            raise YamlRefused(Problem(
                dotted,
                f"duplicate key at line {k.start_mark.line + 1} (first at line {seen[text]}); "
                "YAML would silently keep the last one: keep one",
            ))
        seen[text] = k.start_mark.line + 1
