"""What the caller hears and is asked: prompts, intake, triage and overflow."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import yaml

from ivr.rules import model as m
from ivr.rules.prompts import (
    PLACEHOLDERS,
    default_menu_text,
    default_prompts,
    placeholders_in,
)
from ivr.rules.shape import KEY_RE, RED_FLAG_CHARS, RED_FLAG_WAIT
from ivr.rules.validate.core import Reader, child, shown
from ivr.rules.validate.tables import (
    DEFAULT_RING_SECONDS,
    INTAKE_KEYS,
    OVERFLOW_KEYS,
    PER_LANGUAGE_KEYS,
    PROMPT_KEYS,
    PROMPTS_KEYS,
    RED_FLAGS_KEYS,
    TRIAGE_KEYS,
)
from ivr.transcribe.redflags import normalised

#: The menu's prompts: id -> its key under triage.
MENU_PROMPTS = {"menu": "prompt", "menu_invalid": "invalid_prompt",
                "menu_no_input": "no_input_prompt"}
# A key such as es-US: a mapping with one is a prompt per language, not {text, file}.
_TAG_LIKE = re.compile(r"^[A-Za-z]{2,3}-[A-Za-z]{2,4}$")


def _per_language(node: yaml.Node) -> bool:
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(k, yaml.ScalarNode) and _TAG_LIKE.match(str(k.value)) for k, _ in node.value)


class CallFlowSection(Reader):
    """prompts, intake, triage and overflow: what the caller hears and is asked."""

    def prompt(self, node: yaml.Node | None, path: str, pid: str) -> m.Prompt | None:
        """A prompt: plain text, or {text, file} where file is a recording."""
        if node is None:
            return None
        if isinstance(node, yaml.ScalarNode):
            text = self.text(node, path, "text, or a mapping with text and/or file")
            rec = None
        else:
            fields = self.mapping(node, path, PROMPT_KEYS)
            if fields is None:
                return None
            text = self.text(fields.get("text"), child(path, "text"))
            rec = self.text(fields.get("file"), child(path, "file"), "a path to a recording")
            if rec is not None:
                self.check_recording(fields["file"], child(path, "file"), rec)
            if text is None and rec is None:
                self.c.error(node, path, None, "text and/or file", "a prompt needs text or a file")
                return None
            if text is None:
                text = f"[recording {rec}]"
        if text is None:
            return None
        try:
            unknown = placeholders_in(text) - PLACEHOLDERS
        except ValueError:
            self.c.error(node, path, text, "balanced {placeholders}",
                         "malformed {placeholder} in prompt text")
            return None
        if unknown:
            self.c.error(node, path, text, "placeholders among: " + ", ".join(sorted(PLACEHOLDERS)),
                         f"unknown placeholder {{{sorted(unknown)[0]}}}")
            return None
        return m.Prompt(pid, text, rec)

    def check_recording(self, node: yaml.Node, path: str, rec: str) -> None:
        """Warn when a prompt's recording is not a file: the call speaks the text instead.

        Resolved as the controller does: relative to the rules file's folder. Only
        looked at (stat), never read here.
        """
        where = Path(rec) if Path(rec).is_absolute() else self.base_dir.resolve() / rec
        try:
            found = stat.S_ISREG(os.stat(where).st_mode)
        except (OSError, ValueError):  # missing, unreadable folder, NUL in the name
            found = False
        if not found:
            self.c.warn(node, path, rec, "a recording file; a relative path is relative to "
                        f"the rules file's folder ({self.base_dir.resolve()})",
                        f"recording {rec!r} is not a file ({where}); the text is spoken "
                        "instead")


    @property
    def offered(self) -> tuple[str, ...]:
        """The practice's languages, the default first (read before the prompts)."""
        return self.languages or (self.language,)

    def localized(self, node: yaml.Node | None, path: str, pid: str) -> dict[str, m.Prompt]:
        """A prompt in each offered language: {en-US: ..., es-US: ...}, each a text or
        {text, file}; a single one stands for the default language only when the practice
        offers one. A language offered and not given is an error naming it and the key."""
        if node is None:
            return {}
        offered = self.offered
        if not _per_language(node):
            p = self.prompt(node, path, pid)
            if p is None:
                return {}
            if len(offered) > 1:
                missing = ", ".join(offered[1:])
                self.c.error(node, path, None, "one text per language: "
                             + ", ".join(f"{t}: ..." for t in offered),
                             f"given once, but the practice offers {', '.join(offered)}: "
                             f"no {missing} text for {path}")
                return {}
            return {offered[0]: p}
        f = self.mapping(node, path, PER_LANGUAGE_KEYS) or {}
        out: dict[str, m.Prompt] = {}
        for tag, vnode in f.items():
            if tag not in offered:
                self.c.error(vnode, child(path, tag), tag,
                             "one of the practice's languages: " + ", ".join(offered),
                             f"{tag} is not a language this practice offers")
                continue
            p = self.prompt(vnode, child(path, tag), pid)
            if p is not None:
                out[tag] = p
        for tag in offered:
            if tag not in f:
                self.c.error(node, child(path, tag), None, f"the {pid} prompt in {tag}",
                             f"no {tag} text for {path} (every prompt in every language "
                             "the practice offers)")
        return out

    def prompts(self, node: yaml.Node | None) -> dict[str, dict[str, m.Prompt]]:
        """Each offered language's prompt table (built-in defaults in that language, then
        the practice's own)."""
        f = self.mapping(node, "prompts", PROMPTS_KEYS) or {}
        tables = {tag: {pid: m.Prompt(pid, text) for pid, text in default_prompts(tag).items()
                        if text} for tag in self.offered}
        for pid, pnode in f.items():
            for tag, p in self.localized(pnode, child("prompts", pid), pid).items():
                tables[tag][pid] = p
        return tables

    def intake(self, node: yaml.Node | None) -> m.Intake:
        f = self.mapping(node, "intake", INTAKE_KEYS) or {}
        collect = []
        if "collect" in f:
            for i, item in enumerate(self.seq(f["collect"], "intake.collect")):
                v = self.choice(item, child("intake.collect", i), m.INTAKE_FIELDS)
                if v is not None and v not in collect:
                    collect.append(v)
        d = m.Intake()
        return m.Intake(
            collect=tuple(collect) if "collect" in f else d.collect,
            reason_max_seconds=self.integer(f.get("reason_max_seconds"),
                                            "intake.reason_max_seconds", 5, 300,
                                            d.reason_max_seconds),
            name_max_seconds=self.integer(f.get("name_max_seconds"), "intake.name_max_seconds",
                                          2, 60, d.name_max_seconds),
            retries=self.integer(f.get("retries"), "intake.retries", 0, 5, d.retries),
            input_timeout_seconds=self.integer(f.get("input_timeout_seconds"),
                                               "intake.input_timeout_seconds", 1, 30,
                                               d.input_timeout_seconds),
        )

    def triage(self, node: yaml.Node | None
               ) -> tuple[m.Menu | None, dict[str, dict[str, m.Prompt]]]:
        f = self.mapping(node, "triage", TRIAGE_KEYS)
        if f is None:
            return None, {}
        options: dict[str, str] = {}
        kf = f.get("keys")
        if kf is not None:
            if not isinstance(kf, yaml.MappingNode):
                self.c.error(kf, "triage.keys", shown(kf), "a mapping of key -> disposition",
                             f"{shown(kf)} is not a mapping")
            else:
                for knode, vnode in kf.value:
                    key = str(knode.value)
                    path = child("triage.keys", key)
                    if not KEY_RE.match(key):
                        self.c.error(knode, path, key,
                                     "a single key: 0-9, '*' or '#' (quote * and #)",
                                     f"{key!r} is not a phone key")
                        continue
                    if key in options:
                        self.c.error(knode, path, key, "each key once", f"duplicate key {key!r}")
                        continue
                    disp = self.choice(vnode, path, m.DISPOSITIONS)
                    if disp is not None:
                        options[key] = disp
                if not kf.value:
                    self.c.error(kf, "triage.keys", None, "at least one key",
                                 "the menu has no keys")
        default = self.choice(f.get("default"), "triage.default", m.DISPOSITIONS)
        retries = self.integer(f.get("retries"), "triage.retries", 0, 5, 2)
        timeout = self.integer(f.get("timeout_seconds"), "triage.timeout_seconds", 1, 30, 6)
        given = {pid: self.localized(f.get(key), child("triage", key), pid)
                 for pid, key in MENU_PROMPTS.items()}
        prompts: dict[str, dict[str, m.Prompt]] = {}
        for tag in self.offered:
            defaults = {**default_prompts(tag), "menu": default_menu_text(options, tag)}
            prompts[tag] = {pid: given[pid].get(tag) or m.Prompt(pid, defaults[pid])
                            for pid in MENU_PROMPTS}
        if default is None or not options:
            return None, prompts
        return m.Menu(m.frozen_map(options), default, retries, timeout), prompts

    def red_flags(self, node: yaml.Node | None) -> m.RedFlags:
        """red_flags: the practice's own phrases (each at most once), the built-in ones
        on or off, and the longest wait for the reason's transcript."""
        f = self.mapping(node, "red_flags", RED_FLAGS_KEYS) or {}
        d = m.RedFlags()
        phrases: list[str] = []
        seen: set[str] = set()
        lo, hi = RED_FLAG_CHARS
        for i, item in enumerate(self.seq(f.get("phrases"), "red_flags.phrases")):
            path = child("red_flags.phrases", i)
            text = self.text(item, path, f"a phrase of {lo} to {hi} characters")
            if text is None:
                continue
            norm = normalised(text)
            if not lo <= len(text.strip()) <= hi or not any(c.isalpha() for c in norm):
                self.c.error(item, path, text, f"a phrase of {lo} to {hi} characters with "
                             "at least one word", f"{text!r} is not a usable phrase")
            elif norm in seen:
                self.c.error(item, path, text, "each phrase once",
                             f"{text!r} is listed twice (case and punctuation aside)")
            else:
                seen.add(norm)
                phrases.append(text.strip())
        return m.RedFlags(
            tuple(phrases), self.boolean(f.get("defaults"), "red_flags.defaults", d.defaults),
            self.integer(f.get("wait_seconds"), "red_flags.wait_seconds", *RED_FLAG_WAIT,
                         d.wait_seconds))

    def overflow(self, node: yaml.Node | None) -> m.Overflow:
        f = self.mapping(node, "overflow", OVERFLOW_KEYS)
        if f is None:
            return m.Overflow()
        mode = self.choice(f.get("mode"), "overflow.mode", m.OVERFLOW_MODES) or m.OVERFLOW_MODES[0]
        return m.Overflow(
            mode, self.phones(f.get("bridge_to"), "overflow.bridge_to"),
            self.integer(f.get("ring_seconds"), "overflow.ring_seconds", 5, 120,
                         DEFAULT_RING_SECONDS),
        )
