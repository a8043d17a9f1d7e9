"""One shape for a practice file: the validator's key tables and the JSON Schema agree.

Both are generated from ivr/rules/shape.py; this checks the generated forms both ways,
so a table that stops being generated (or a section of the schema the validator does not
read) is caught. routing_rules/schema.json against `ivr rules schema`:
test_rules_cli.test_schema_file_in_sync.
"""

from __future__ import annotations

from typing import Any

from ivr.rules import shape
from ivr.rules.schema import json_schema
from ivr.rules.validate import tables


def _objects(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every object schema with fixed keys, anywhere in the schema, with where it is."""
    found = []
    if isinstance(node, dict):
        if node.get("additionalProperties") is False and "properties" in node:
            found.append((path, node))
        for key, value in node.items():
            found += _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _objects(value, f"{path}/{i}")
    return found


def _key_tables() -> dict[str, dict[str, bool]]:
    return {name: table for name, table in vars(tables).items() if name.endswith("_KEYS")}


def _signature(keys: dict[str, bool]) -> tuple[tuple[str, bool], ...]:
    return tuple(keys.items())


def test_every_key_table_is_an_object_of_the_schema_with_the_same_required_keys():
    in_schema = {
        _signature({k: k in obj.get("required", []) for k in obj["properties"]})
        for _, obj in _objects(json_schema())
    }
    for name, table in _key_tables().items():
        assert _signature(table) in in_schema, f"{name} is not an object of the schema"


def test_every_object_of_the_schema_is_a_key_table_of_the_validator():
    known = {_signature(table) for table in _key_tables().values()}
    for path, obj in _objects(json_schema()):
        keys = {k: k in obj.get("required", []) for k in obj["properties"]}
        assert _signature(keys) in known, f"{path or '/'}: no key table reads {sorted(keys)}"


def test_the_key_tables_are_generated_from_the_shape():
    declared = {_signature(v.keys) for v in vars(shape).values() if isinstance(v, shape.Obj)}
    assert {_signature(t) for t in _key_tables().values()} == declared
    assert tables.TOP_KEYS["practice"] is True and tables.TOP_KEYS["hours"] is False
    assert list(tables.HOURS_KEYS) == list(shape.WEEKDAYS)


def test_the_schema_types_come_from_the_same_declaration():
    schema = json_schema()
    step = schema["properties"]["on_call"]["properties"]["escalation"]["items"]
    assert step["properties"]["ring_seconds"] == {"type": "integer", "minimum": 5,
                                                  "maximum": 120}
    assert [r["required"] for r in step["oneOf"]] == [[k] for k in
                                                      (*shape.TARGET_KINDS, "together")]
