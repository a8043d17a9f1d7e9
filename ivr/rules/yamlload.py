"""PyYAML loading that keeps positions and never turns '10:00' or 'no' into numbers/booleans."""

from __future__ import annotations

import re
from typing import Any

import yaml


class RulesLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-style core resolution.

    YAML 1.1 (PyYAML's default) reads unquoted `10:00` as the integer 600 (base 60),
    `no`/`off`/`yes` as booleans and `2026-12-24` as a date. Admins write opening
    hours unquoted, so only `true`/`false`, `null`/`~`, decimal integers and plain
    floats are resolved; everything else stays a string. The validator also reads
    the scalar's source text when a string is expected, so a phone number written
    as `+16175550100` keeps its '+'.
    """


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


def compose(text: str, filename: str) -> yaml.Node | None:
    """Parse one YAML document into a node tree (raises yaml.MarkedYAMLError)."""
    loader = RulesLoader(text)
    loader.name = filename
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def to_plain(node: yaml.Node | None) -> Any:
    """Plain Python data for a node tree (used for JSON Schema checks and the digest)."""
    if node is None:
        return None
    if isinstance(node, yaml.MappingNode):
        return {str(to_plain(k)): to_plain(v) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [to_plain(v) for v in node.value]
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
