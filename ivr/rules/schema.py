"""JSON Schema (draft 2020-12) of a practice file, for editors.

Rendered from the declarations in shape.py, the same ones the validator's key tables
are generated from.
"""

from __future__ import annotations

import json
from typing import Any

from ivr.rules.shape import DEFS, TOP, render

SCHEMA_ID = "https://github.com/ivr-answering/ivr/routing_rules/schema.json"


def json_schema() -> dict[str, Any]:
    """The schema as a dict."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Practice routing rules",
        **TOP.schema(),
        "$defs": render(DEFS),
    }


def schema_text() -> str:
    """The schema as the text shipped in routing_rules/schema.json."""
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
