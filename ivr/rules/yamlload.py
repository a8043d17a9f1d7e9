"""PyYAML loading that keeps positions and never turns '10:00' or 'no' into numbers/booleans."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from ivr.rules.limits import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_ITEMS,
    MAX_LIMIT_ERRORS,
    MAX_NODES,
    MAX_SCALAR_CHARS,
)


class TooDeep(yaml.MarkedYAMLError):
    """Lists and mappings nested deeper than MAX_DEPTH (PyYAML's composer recurses)."""


class RulesLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-style core resolution.

    YAML 1.1 (PyYAML's default) reads unquoted `10:00` as the integer 600 (base 60),
    `no`/`off`/`yes` as booleans and `2026-12-24` as a date. Admins write opening
    hours unquoted, so only `true`/`false`, `null`/`~`, decimal integers and plain
    floats are resolved; everything else stays a string. The validator also reads
    the scalar's source text when a string is expected, so a phone number written
    as `+16175550100` keeps its '+'.

    Composing stops at MAX_DEPTH levels: PyYAML composes recursively, and a few
    hundred levels of `[[[...` would otherwise end in RecursionError.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise TooDeep(None, None, f"lists and mappings nested deeper than {MAX_DEPTH} "
                              "levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


RulesLoader.yaml_implicit_resolvers = {}
RulesLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
RulesLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
RulesLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)
RulesLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)

STR_TAG = "tag:yaml.org,2002:str"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
BOOL_TAG = "tag:yaml.org,2002:bool"
NULL_TAG = "tag:yaml.org,2002:null"
SEQ_TAG = "tag:yaml.org,2002:seq"
MAP_TAG = "tag:yaml.org,2002:map"
SCALAR_TAGS = (STR_TAG, INT_TAG, FLOAT_TAG, BOOL_TAG, NULL_TAG)
INT_RE = re.compile(r"^[-+]?[0-9]+$")
BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


def compose(text: str, filename: str) -> yaml.Node | None:
    """Parse one YAML document into a node tree (raises yaml.MarkedYAMLError)."""
    loader = RulesLoader(text)
    loader.name = filename
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


@dataclass(frozen=True)
class Finding:
    """A value over a limit or with a tag the rules do not use (where, what, expected)."""

    node: yaml.Node
    key: str
    value: Any
    expected: str
    message: str


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _tag(tag: str) -> str:
    """A tag as written: !!int for tag:yaml.org,2002:int."""
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix):] if tag.startswith(prefix) else tag


def _scalar_finding(node: yaml.ScalarNode, key: str) -> Finding | None:
    value = str(node.value)
    if node.tag == INT_TAG:  # before the length: a 4,300-digit number is a number problem
        if not INT_RE.match(value):
            return Finding(node, key, value[:40], "a whole number such as 20",
                           f"{value[:40]!r} is tagged !!int but is not a whole number")
        digits = len(value.lstrip("+-"))
        if digits > MAX_INT_DIGITS:
            return Finding(node, key, value[:24] + "...", f"at most {MAX_INT_DIGITS} digits",
                           f"a number of {digits:,} digits")
    if len(value) > MAX_SCALAR_CHARS:
        return Finding(node, key, value[:40] + "...", f"at most {MAX_SCALAR_CHARS:,} characters",
                       f"a value of {len(value):,} characters")
    if node.tag not in SCALAR_TAGS:
        return Finding(node, key, value, "a plain value (string, number, true/false)",
                       f"the tag {_tag(node.tag)[:60]} is not used in rules files")
    if node.tag == FLOAT_TAG:
        try:
            float(value)
        except ValueError:
            return Finding(node, key, value, "a number such as 1.5",
                           f"{value!r} is tagged !!float but is not a number")
    if node.tag == BOOL_TAG and not BOOL_RE.match(value):
        return Finding(node, key, value, "true or false",
                       f"{value!r} is tagged !!bool but is not true or false")
    return None


def check_limits(root: yaml.Node, tick: Callable[[], None] | None = None) -> list[Finding]:
    """Values over the limits in `limits`, before the validator reads anything.

    Walks the tree without recursion, following aliases each time they are used, so
    an alias bomb (a list of aliases to lists of aliases...) or an alias to its own
    parent counts against MAX_NODES and MAX_DEPTH instead of exhausting memory or
    the stack later. Stops after MAX_LIMIT_ERRORS findings. `tick` is called now and
    then (the load's time budget).
    """
    found: list[Finding] = []
    stack: list[tuple[yaml.Node, str, int]] = [(root, "", 1)]
    visited = 0
    while stack and len(found) < MAX_LIMIT_ERRORS:
        node, key, depth = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            found.append(Finding(node, key, None, f"at most {MAX_NODES:,} values in one file "
                                 "(aliases count each time they are used)",
                                 f"more than {MAX_NODES:,} values"))
            break
        if tick is not None and visited % 2048 == 0:
            tick()
        if depth > MAX_DEPTH:  # only reachable through aliases: the composer stops earlier
            key = key if len(key) <= 80 else key[:80] + "..."
            found.append(Finding(node, key, None, f"at most {MAX_DEPTH} levels of nesting",
                                 "nested too deep (an alias that contains itself?)"))
            continue
        if isinstance(node, yaml.ScalarNode):
            finding = _scalar_finding(node, key)
            if finding is not None:
                found.append(finding)
            continue
        what = "list" if isinstance(node, yaml.SequenceNode) else "mapping"
        if node.tag != (SEQ_TAG if what == "list" else MAP_TAG):
            found.append(Finding(node, key, None, f"a plain {what}",
                                 f"the tag {_tag(node.tag)[:60]} is not used in rules files"))
            continue
        if len(node.value) > MAX_ITEMS:
            found.append(Finding(node, key, None, f"at most {MAX_ITEMS:,} entries",
                                 f"a {what} of {len(node.value):,} entries"))
            continue
        children: list[tuple[yaml.Node, str, int]] = []
        if isinstance(node, yaml.SequenceNode):
            children = [(item, _join(key, i), depth + 1) for i, item in enumerate(node.value)]
        else:
            for knode, vnode in node.value:
                if not isinstance(knode, yaml.ScalarNode):
                    found.append(Finding(knode, key, None, "a plain key such as 'name'",
                                         "a list or mapping used as a key"))
                    continue
                kpath = _join(key, str(knode.value)[:40])
                children.append((knode, kpath, depth + 1))
                children.append((vnode, kpath, depth + 1))
        stack.extend(reversed(children))  # keep file order in the findings
    return found


def to_plain(node: yaml.Node | None, _depth: int = 0) -> Any:
    """Plain Python data for a node tree (used for JSON Schema checks and the digest).

    Raises ValueError past MAX_DEPTH levels (an alias that contains itself never ends).
    """
    if node is None:
        return None
    if _depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, yaml.MappingNode):
        return {str(to_plain(k, _depth + 1)): to_plain(v, _depth + 1) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [to_plain(v, _depth + 1) for v in node.value]
    if node.tag == INT_TAG:
        return int(node.value)
    if node.tag == FLOAT_TAG:
        return float(node.value)
    if node.tag == BOOL_TAG:
        return node.value.lower() == "true"
    if node.tag == NULL_TAG:
        return None
    return node.value


def load_plain(text: str, filename: str = "<string>") -> Any:
    """Convenience: the plain data of a document, with the rules' scalar resolution."""
    return to_plain(compose(text, filename))
