"""Renders asterisk_conf/ and dialplans/ into an instance folder.

Placeholders are `{{name}}`; every value comes from validated Settings or from this
module, never from a caller. An unknown placeholder is an error, so a typo in a template
fails the render instead of reaching Asterisk.
"""

from __future__ import annotations

import re
from pathlib import Path

from ivr.pbx import safefs

REPO = Path(__file__).resolve().parent.parent.parent
CONF_DIR = REPO / "asterisk_conf"
DIALPLAN_DIR = REPO / "dialplans"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class RenderError(ValueError):
    """A template names a placeholder nobody fills."""


def render_text(template: str, values: dict[str, str], source: str = "<template>") -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            line = template.count("\n", 0, match.start()) + 1
            raise RenderError(f"{source}:{line}: unknown placeholder {{{{{name}}}}}")
        return values[name]

    return _PLACEHOLDER.sub(fill, template)


def agi_backup_lines(backups: tuple[str, ...], route: str) -> str:
    """Dialplan lines trying each backup controller, only when none was reachable.

    A backup is tried only on AGISTATUS=FAILURE (unreachable). A controller that crashed
    mid-call leaves SUCCESS and no sentinel: that call goes to the fallback, not to a
    second controller that would start the intake again from the beginning.
    """
    lines = []
    for address in backups:
        lines.append(' same => n,GotoIf($["${IVR_RESULT}" != "" | '
                     '"${AGISTATUS}" != "FAILURE"]?after)')
        lines.append(f" same => n,AGI(agi://{address}/{route})")
    return "\n".join(lines) if lines else " same => n,NoOp(no backup controller)"


def render_all(dest_etc: Path, values: dict[str, str],
               owner: safefs.Owner | None = None) -> list[Path]:
    """Write every template into dest_etc, each 0600 (manager.conf holds the AMI secret)
    and given to `owner` (the PBX user) when set; return the files written."""
    dest_etc.mkdir(parents=True, exist_ok=True)
    written = []
    for folder in (CONF_DIR, DIALPLAN_DIR):
        for template in sorted(folder.glob("*.conf")):
            text = render_text(template.read_text(), values, str(template.relative_to(REPO)))
            # From the parent: a link planted in place of the folder is refused.
            safefs.write_file(dest_etc.parent, f"{dest_etc.name}/{template.name}",
                              text.encode(), owner)
            written.append(dest_etc / template.name)
    return written
