"""A small reader of Asterisk `extensions.conf` syntax, so tests (and a future `contactd check-pbx`) can prove that
every context/extension contactd redirects or originates to exists in the dialplan it ships.

It understands what pbx_config does with the lines we use: `[context]` headers (with `(+)` append and `(!)`
templates), `exten =>`/`same =>` with numbered, `n` and labelled priorities, `hint`, `include =>`, `[globals]`,
`;` comments (`\\;` escapes, `;-- --;` blocks) and `#include`. Extension matching follows Asterisk's rules:
names starting with `_` are patterns (`X` 0-9, `Z` 1-9, `N` 2-9, `[1-5a]` sets, `.` one or more of anything,
`!` zero or more, `-` ignored), an exact name beats any pattern, a more specific pattern beats a looser one, and
a context's own extensions are tried before its includes. It does not run anything: it answers "would Asterisk
find an extension here?".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HINT = -1  # priority number of a `hint` line: it is a device mapping, not something a channel can run


class DialplanError(Exception):
    """The text is not valid extensions.conf syntax (the message names the line)."""


@dataclass(frozen=True)
class Step:
    """One priority of an extension: `exten => 1001,2(ring),Dial(PJSIP/1001,30,tT)`."""

    priority: int
    label: str | None
    app: str
    args: str
    line: int

    def arg_list(self, sep: str = ",") -> list[str]:
        """Arguments split on top-level `sep` (inside `${...}`, `$[...]` or `(...)` it does not split), e.g.
        `sep=":"` for the branches of GotoIf/ExecIf."""
        return _split_top_level(self.args, sep)


@dataclass
class Extension:
    name: str  # as written: "s", "abuse", "_X."
    callerid: str | None = None  # `exten => 123/0212345678,...` only matches that caller
    steps: dict[int, Step] = field(default_factory=dict)

    @property
    def is_pattern(self) -> bool:
        return self.name.startswith("_")

    def matches(self, exten: str) -> bool:
        return extension_matches(self.name, exten)

    def step(self, priority: int | str) -> Step | None:
        """The step at a priority number or label."""
        if isinstance(priority, int):
            return self.steps.get(priority)
        return next((s for s in self.steps.values() if s.label == priority), None)

    def ordered_steps(self) -> list[Step]:
        return [self.steps[p] for p in sorted(self.steps) if p != HINT]


@dataclass
class Context:
    name: str
    extensions: dict[tuple[str, str | None], Extension] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)
    template: bool = False


@dataclass
class Dialplan:
    contexts: dict[str, Context] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)
    file_includes: list[str] = field(default_factory=list)  # `#include` targets not resolved by the parser

    def find(self, context: str, exten: str, *, callerid: str | None = None) -> Extension | None:
        """The extension Asterisk would run for `exten` dialled in `context`, following includes; None if none."""
        return self._find(context, exten, callerid, set())

    def has_extension(self, context: str, exten: str, priority: int | str | None = None,
                      *, callerid: str | None = None) -> bool:
        """Would a channel sent to (context, exten[, priority]) find something to run?"""
        found = self.find(context, exten, callerid=callerid)
        if found is None:
            return False
        return priority is None or found.step(priority) is not None

    def missing_includes(self) -> list[tuple[str, str]]:
        """(context, included name) pairs whose included context is not defined."""
        return [(c.name, inc) for c in self.contexts.values() for inc in c.includes if inc not in self.contexts]

    def steps(self) -> Iterator[tuple[Context, Extension, Step]]:
        for ctx in self.contexts.values():
            for ext in ctx.extensions.values():
                for step in ext.ordered_steps():
                    yield ctx, ext, step

    def _find(self, context: str, exten: str, callerid: str | None, seen: set[str]) -> Extension | None:
        ctx = self.contexts.get(context)
        if ctx is None or context in seen or ctx.template:
            return None
        seen.add(context)
        candidates = [
            ext for ext in ctx.extensions.values()
            if ext.matches(exten) and (ext.callerid is None or _callerid_matches(ext.callerid, callerid))
        ]
        if candidates:
            # Asterisk: caller-id specific entries first, then exact names, then the most specific pattern.
            return min(candidates, key=lambda e: (e.callerid is None, e.is_pattern, _pattern_key(e.name)))
        for included in ctx.includes:
            found = self._find(included, exten, callerid, seen)
            if found is not None:
                return found
        return None


# ---------------------------------------------------------------------------------------------------- matching

_PATTERN_CLASSES = {"X": "0123456789", "Z": "123456789", "N": "23456789"}
_ANY_ONE_OR_MORE = "."
_ANY_ZERO_OR_MORE = "!"


def _pattern_elements(pattern: str) -> list[str]:
    """A pattern body (after `_`) as a list of element strings: a char set, or "." / "!"."""
    elements: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "-":  # Asterisk ignores dashes in patterns (`_NXX-XXXX`)
            i += 1
            continue
        if ch.upper() in _PATTERN_CLASSES:
            elements.append(_PATTERN_CLASSES[ch.upper()])
        elif ch in (_ANY_ONE_OR_MORE, _ANY_ZERO_OR_MORE):
            elements.append(ch)
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise DialplanError(f"pattern _{pattern}: unclosed '['")
            elements.append(_char_set(pattern[i + 1:end], pattern))
            i = end
        else:
            elements.append(ch)
        i += 1
    return elements


def _char_set(body: str, pattern: str) -> str:
    chars: set[str] = set()
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi = body[i], body[i + 2]
            if ord(lo) > ord(hi):
                raise DialplanError(f"pattern _{pattern}: bad range {lo}-{hi}")
            chars.update(chr(c) for c in range(ord(lo), ord(hi) + 1))
            i += 3
        else:
            chars.add(body[i])
            i += 1
    if not chars:
        raise DialplanError(f"pattern _{pattern}: empty '[]'")
    return "".join(sorted(chars))


def extension_matches(name: str, exten: str) -> bool:
    """Asterisk's full-match rule (E_MATCH) for one extension name against a dialled string."""
    if not name.startswith("_"):
        return name == exten
    elements = _pattern_elements(name[1:])

    def match(ei: int, xi: int) -> bool:
        while ei < len(elements):
            element = elements[ei]
            if element == _ANY_ZERO_OR_MORE:
                return True  # "!" swallows whatever is left, including nothing
            if element == _ANY_ONE_OR_MORE:
                return xi < len(exten)
            if xi >= len(exten) or exten[xi] not in element:
                return False
            ei += 1
            xi += 1
        return xi == len(exten)

    return match(0, 0)


def _pattern_key(name: str) -> tuple[tuple[int, str], ...]:
    """Sort key: smaller = more specific, element by element, like Asterisk's ext_cmp."""
    if not name.startswith("_"):
        return ()
    key = []
    for element in _pattern_elements(name[1:]):
        if element == _ANY_ONE_OR_MORE:
            key.append((1 << 16, ""))
        elif element == _ANY_ZERO_OR_MORE:
            key.append((1 << 17, ""))
        else:
            key.append((len(element), element[0]))
    return tuple(key)


def _callerid_matches(want: str, callerid: str | None) -> bool:
    return callerid is not None and extension_matches(want, callerid)


# ---------------------------------------------------------------------------------------------------- parsing

_HEADER_RE = re.compile(r"^\[([^\]]+)\]\s*(?:\(([^)]*)\))?\s*$")
_KEYVAL_RE = re.compile(r"^([A-Za-z_][\w-]*)\s*=>?\s*(.*)$")
_PRIORITY_RE = re.compile(r"^(?:(\d+)|(n)|(hint))(?:\(([\w-]+)\))?$", re.I)
_APP_RE = re.compile(r"^([A-Za-z][\w]*)\s*(?:\((.*)\))?\s*$", re.S)
_SETTINGS_SECTIONS = {"general"}


def _strip_comments(text: str) -> list[str]:
    """Lines with `;` comments removed (`\\;` is a literal semicolon); `;-- ... --;` blocks may span lines."""
    out: list[str] = []
    in_block = False
    for raw in text.splitlines():
        line = ""
        i = 0
        while i < len(raw):
            if in_block:
                end = raw.find("--;", i)
                if end < 0:
                    i = len(raw)
                    break
                in_block = False
                i = end + 3
                continue
            ch = raw[i]
            if ch == "\\" and raw.startswith(";", i + 1):
                line += ";"
                i += 2
            elif raw.startswith(";--", i):
                in_block = True
                i += 3
            elif ch == ";":
                break
            else:
                line += ch
                i += 1
        out.append(line.strip())
    return out


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}" and depth:
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def parse_dialplan(text: str) -> Dialplan:
    """Parse extensions.conf text. `#include` lines are recorded in `file_includes`, not followed."""
    plan = Dialplan()
    section: str | None = None
    current: Context | None = None
    last_ext: Extension | None = None
    last_priority = 0

    for lineno, line in enumerate(_strip_comments(text), start=1):
        if not line:
            continue
        if line.startswith("#"):
            directive, _, arg = line.partition(" ")
            if directive in ("#include", "#tryinclude"):
                plan.file_includes.append(arg.strip().strip('"<>'))
                continue
            if directive == "#exec":
                continue
            raise DialplanError(f"line {lineno}: unknown directive {directive}")
        header = _HEADER_RE.match(line)
        if header:
            section = header.group(1).strip()
            last_ext, last_priority = None, 0
            if section == "globals" or section in _SETTINGS_SECTIONS:
                current = None
                continue
            options = [o.strip() for o in (header.group(2) or "").split(",") if o.strip()]
            current = plan.contexts.setdefault(section, Context(section))
            for option in options:
                if option == "!":
                    current.template = True
                elif option != "+":
                    _inherit(plan, current, option, lineno)
            continue
        if section is None:
            raise DialplanError(f"line {lineno}: text before the first [section]: {line!r}")
        keyval = _KEYVAL_RE.match(line)
        if not keyval:
            raise DialplanError(f"line {lineno}: expected 'key => value', got {line!r}")
        key, value = keyval.group(1).lower(), keyval.group(2).strip()
        if section == "globals":
            plan.globals[keyval.group(1)] = value
            continue
        if current is None:  # [general] settings
            continue
        if key == "include":
            current.includes.append(value.split(",", 1)[0].strip())  # ",time,dow,dom,month" limits: ignored
        elif key == "exten":
            last_ext, last_priority = _add_step(current, value, None, 0, lineno)
        elif key == "same":
            if last_ext is None:
                raise DialplanError(f"line {lineno}: 'same =>' without a preceding 'exten =>'")
            last_ext, last_priority = _add_step(current, value, last_ext, last_priority, lineno)
        else:
            raise DialplanError(f"line {lineno}: unknown key {keyval.group(1)!r} in [{section}]")
    return plan


def load_dialplan(path: Path, search_dirs: list[Path] | None = None) -> Dialplan:
    """Parse a file, following `#include` (relative to the file, then `search_dirs`), like Asterisk does."""
    return parse_dialplan(_expand(Path(path), list(search_dirs or []), depth=0))


def _expand(path: Path, search_dirs: list[Path], depth: int) -> str:
    if depth > 8:
        raise DialplanError(f"{path}: #include nested too deeply (a loop?)")
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if stripped.startswith(("#include", "#tryinclude")):
            name = stripped.partition(" ")[2].strip().strip('"<>')
            target = next((d / name for d in [path.parent, *search_dirs] if (d / name).is_file()), None)
            if target is None:
                if stripped.startswith("#tryinclude"):
                    continue
                raise DialplanError(f"{path}: #include {name}: file not found")
            lines.append(_expand(target, search_dirs, depth + 1))
        else:
            lines.append(raw)
    return "\n".join(lines)


def _inherit(plan: Dialplan, ctx: Context, template: str, lineno: int) -> None:
    source = plan.contexts.get(template)
    if source is None:
        raise DialplanError(f"line {lineno}: [{ctx.name}] inherits unknown template {template!r}")
    for key, ext in source.extensions.items():
        ctx.extensions.setdefault(key, Extension(ext.name, ext.callerid, dict(ext.steps)))
    ctx.includes.extend(i for i in source.includes if i not in ctx.includes)


def _add_step(ctx: Context, value: str, same: Extension | None, last_priority: int,
              lineno: int) -> tuple[Extension, int]:
    if same is None:
        # Plain split: extension names and priorities never contain commas, and a typo like `_[1-` must
        # not make the bracket swallow the rest of the line.
        parts = value.split(",", 2)
        if len(parts) < 3:
            raise DialplanError(f"line {lineno}: expected 'exten => name,priority,App(args)', got {value!r}")
        name_part, priority_text, app_text = (p.strip() for p in parts)
        name, _, callerid = name_part.partition("/")
        name = name.strip()
        if not name:
            raise DialplanError(f"line {lineno}: empty extension name")
        if name.startswith("_"):
            _pattern_elements(name[1:])  # validate now so a typo fails at parse time, not at match time
        key = (name, callerid.strip() or None)
        ext = ctx.extensions.setdefault(key, Extension(name, key[1]))
        previous = max((p for p in ext.steps if p != HINT), default=0) if ext.steps else 0
    else:
        parts = value.split(",", 1)
        if len(parts) < 2:
            raise DialplanError(f"line {lineno}: expected 'same => priority,App(args)', got {value!r}")
        priority_text, app_text = (p.strip() for p in parts)
        ext, previous = same, last_priority

    prio = _PRIORITY_RE.match(priority_text)
    if not prio:
        raise DialplanError(f"line {lineno}: bad priority {priority_text!r}")
    if prio.group(3):
        number = HINT
    elif prio.group(2):
        if previous == 0:
            raise DialplanError(f"line {lineno}: priority 'n' before any numbered priority of {ext.name}")
        number = previous + 1
    else:
        number = int(prio.group(1))
        if number < 1:
            raise DialplanError(f"line {lineno}: priority must be >= 1")
    if number in ext.steps:
        # Asterisk refuses the second one with a warning; here it is almost always a copy-paste mistake.
        raise DialplanError(f"line {lineno}: [{ctx.name}] {ext.name} priority {priority_text} defined twice")

    if number == HINT:
        app, args = "hint", app_text
    else:
        app_match = _APP_RE.match(app_text)
        if not app_match:
            raise DialplanError(f"line {lineno}: bad application {app_text!r}")
        app, args = app_match.group(1), (app_match.group(2) or "")
    ext.steps[number] = Step(number, prio.group(4), app, args, lineno)
    return ext, (previous if number == HINT else number)


__all__ = [
    "Context", "Dialplan", "DialplanError", "Extension", "Step",
    "extension_matches", "load_dialplan", "parse_dialplan",
]
