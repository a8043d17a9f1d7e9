"""The validator: turns a practice file's YAML node tree into a Practice, collecting every
error and warning with its file:line:column, key, value and what was expected.

One module per section of the rules (practice, hours, callflow, on_call, escalation,
delivery), each a subclass of core.Reader, the generic accessors; tables holds the keys of
each section and the values' patterns and ranges; builder combines the sections and holds
the entry point, build_file; checks looks at the built practice as a whole.
"""

from ivr.rules.validate.builder import Builder, build_file
from ivr.rules.validate.core import Collector

__all__ = ["Builder", "Collector", "build_file"]
