"""One problem-collecting reader for every configuration object.

The stack's own keys (``gpu-platform:region``) and each entry of a list key
(``gpu-platform:models[0]``) are read the same way: a value or its default, checked against
what is allowed, and every problem recorded, never raised, so that one run reports them all.
Each problem names where it is, the value, what is allowed and the fix::

    gpu-platform:gpuNodeCount = 0: must be between 1 and 20. Fix: pulumi config set gpuNodeCount 1
    gpu-platform:models[0] (name 'qwen'): gpus = 0: must be ... Fix: set models[0].gpus to 1
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from components.config.patterns import DNS_1035
from components.kubernetes import parse_quantity


class _Unset:
    def __repr__(self) -> str:
        return "(not set)"


UNSET: Final = _Unset()
"""A key that is absent (distinct from an explicit ``null``)."""


def show(value: object) -> str:
    """A value as a problem line shows it: strings quoted, everything else as JSON."""
    if value is UNSET:
        return "(not set)"
    if isinstance(value, str):
        return repr(value)
    try:
        return json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        return repr(value)


def closest(value: object, known: Iterable[str]) -> str | None:
    """The known name a misspelt ``value`` most likely meant, if one is close enough."""
    if not isinstance(value, str):
        return None
    close = difflib.get_close_matches(value, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(value: object, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a known name is close to ``value``, else ``""``."""
    close = closest(value, known)
    return f" (did you mean {close!r}?)" if close else ""


def is_number(value: object) -> bool:
    """A finite int or float (``bool`` is not a number here; NaN and infinities are not either)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


class ConfigReader:
    """Reads the fields of one configuration object and records what is wrong with them.

    Build one with :meth:`for_stack` (the project's keys, JSON-encoded strings as the Pulumi CLI
    hands them over) or :meth:`for_entry` (one already-parsed object of a list key).
    """

    def __init__(self, *, lookup: Callable[[str], Any], defaults: Mapping[str, Any], problems: list[str],
                 project: str, scope: str, set_hint: Callable[[str, str], str], list_hint: Callable[[str], str],
                 split_commas: bool) -> None:
        self._lookup = lookup
        self.defaults = defaults
        self.problems = problems
        self.project = project
        self.scope = scope
        self._set_hint = set_hint
        self._list_hint = list_hint
        self._split_commas = split_commas
        self.list_key = ""
        """For a list entry: the list's key (``models``) and the entry's index; empty for the stack's keys."""
        self.index = -1
        self.failed_keys: set[str] = set()

    # ---- construction ------------------------------------------------------------------------

    @classmethod
    def for_stack(cls, get: Callable[[str], str | None], defaults: Mapping[str, Any], problems: list[str],
                  project: str) -> ConfigReader:
        """The project's own keys: ``get(key)`` returns the CLI's string (JSON for non-strings) or None."""
        reader: ConfigReader

        def lookup(key: str) -> Any:
            text = get(key)
            if text is None:
                return UNSET
            default = defaults.get(key)
            if isinstance(default, str) or default is None:
                return text
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                if isinstance(default, bool):
                    return text  # refused, with the right message, by flag()
                reader.fail(key, text, f"must be JSON ({type(default).__name__})",
                            f"pulumi config set --path {key} ... or edit Pulumi.<stack>.yaml")
                return UNSET

        reader = cls(lookup=lookup, defaults=defaults, problems=problems, project=project, scope="",
                     set_hint=lambda key, example: f"pulumi config set {key} {example}",
                     list_hint=lambda key: f"pulumi config set --path '{key}[0]' <value>",
                     split_commas=True)
        return reader

    @classmethod
    def for_entry(cls, list_key: str, index: int, raw: Mapping[str, Any], defaults: Mapping[str, Any],
                  problems: list[str], project: str) -> ConfigReader:
        """One object of a list key (``models[i]``), named by its index and, when it has one, its name."""
        name = raw.get("name")
        scope = f"{list_key}[{index}]" + (f" (name {name!r})" if isinstance(name, str) and name else "")
        where = f"{list_key}[{index}]"
        reader = cls(lookup=lambda key: raw.get(key, UNSET), defaults=defaults, problems=problems,
                     project=project, scope=scope,
                     set_hint=lambda key, example: f"set {where}.{key} to {example}",
                     list_hint=lambda key: f"write {where}.{key} as a YAML list, e.g. [\"a\", \"b\"]",
                     split_commas=False)
        reader.list_key, reader.index = list_key, index
        return reader

    @classmethod
    def entries(cls, raw: Any, list_key: str, defaults: Mapping[str, Any], problems: list[str], project: str, *,
                what: str, example: str) -> Iterator[tuple[ConfigReader, dict[str, Any]]]:
        """A reader per object of a list key. A value that is not a list, or an item that is not an
        object, is one problem each (``what`` names the objects, ``example`` shows one in YAML)."""
        if not isinstance(raw, list):
            problems.append(f"{project}:{list_key} = {show(raw)}: must be a list of {what}. "
                            f"Fix: write {project}:{list_key} as a YAML list in Pulumi.<stack>.yaml")
            return
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                problems.append(f"{project}:{list_key}[{index}] = {show(item)}: must be an object. "
                                f"Fix: write it as {example}")
                continue
            yield cls.for_entry(list_key, index, item, defaults, problems, project), item

    @property
    def where(self) -> str:
        """``models[3]`` for a list entry (how its fixes name it); empty for the stack's own keys."""
        return f"{self.list_key}[{self.index}]" if self.list_key else ""

    # ---- reporting -----------------------------------------------------------------------------

    @property
    def failed(self) -> bool:
        return bool(self.failed_keys)

    def location(self, key: str) -> str:
        return f"{self.project}:{key}" if not self.scope else f"{self.project}:{self.scope}: {key}"

    def how_to_set(self, key: str, example: object) -> str:
        return self._set_hint(key, str(example))

    def fail(self, key: str, value: object, allowed: str, fix: str | None = None) -> None:
        """Record one problem: where, the value, what is allowed, and how to fix it."""
        self.failed_keys.add(key)
        self.problems.append(f"{self.location(key)} = {show(value)}: {allowed}. "
                             f"Fix: {fix or self.how_to_set(key, '<value>')}")

    # ---- values ----------------------------------------------------------------------------------

    def given(self, key: str) -> bool:
        return self._lookup(key) is not UNSET

    def get(self, key: str) -> Any:
        """The value as given, or the default."""
        value = self._lookup(key)
        return self.defaults.get(key) if value is UNSET else value

    def _default(self, key: str, fallback: Any = None) -> Any:
        default = self.defaults.get(key)
        return fallback if default is None else default

    def string(self, key: str, allowed: tuple[str, ...] | None = None,
               normalise: Callable[[str], str] = str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            if allowed is not None:
                self.fail(key, value, f"must be one of {', '.join(allowed)}", self.how_to_set(key, allowed[0]))
            else:
                self.fail(key, value, "must be a string")
            return str(self._default(key, ""))
        if value != value.strip():
            # "qwen-small\n" must not slip through to a name: refuse, and show the clean value.
            self.fail(key, value, "has leading or trailing whitespace (a space, tab or newline)",
                      self.how_to_set(key, value.strip() or "<value>"))
        value = normalise(value.strip())
        if allowed is not None and value not in allowed:
            self.fail(key, value, f"must be one of {', '.join(allowed)}", self.how_to_set(key, allowed[0]))
            return str(self._default(key, allowed[0]))
        return value

    def integer(self, key: str, low: int, high: int, why: str = "") -> int:
        """A whole number in ``[low, high]``; out of range is reported and clamped, so later checks
        that use it do not report the same mistake again."""
        value = self.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(key, value, f"must be a finite whole number between {low} and {high}",
                      self.how_to_set(key, low))
            return int(self._default(key, low))
        if not is_number(value) or int(value) != value:
            self.fail(key, value, f"must be a whole number between {low} and {high}", self.how_to_set(key, low))
            return int(self._default(key, low))
        if not low <= value <= high:
            self.fail(key, value, why or f"must be between {low} and {high}",
                      self.how_to_set(key, min(max(int(value), low), high)))
            return int(min(max(value, low), high))
        return int(value)

    def flag(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            self.fail(key, value, "must be true or false", self.how_to_set(key, "false"))
            return bool(self._default(key, False))
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of non-empty strings (on the stack's keys also ``a,b,c``)."""
        value = self.get(key)
        if self._split_commas and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(key, value, "must be a list of non-empty strings", self._list_hint(key))
            return tuple(self._default(key, ()))
        return tuple(value)

    def members(self, key: str, allowed: Sequence[str]) -> tuple[str, ...]:
        """A list whose every item must be one of ``allowed``; returns the items that are."""
        values = self.strings(key)
        for value in values:
            if value not in allowed:
                self.fail(key, value, f"must be one of {', '.join(allowed)}",
                          f"pulumi config set --path '{key}[0]' {allowed[0]}")
        return tuple(v for v in values if v in allowed)

    # ---- list entries ----------------------------------------------------------------------------

    def refuse_unknown(self, raw: Mapping[str, Any], known: Sequence[str]) -> None:
        """Every field of an entry that is not a known one, with the closest known name."""
        for key, value in raw.items():
            if key not in known:
                self.fail(key, value, f"unknown field{did_you_mean(key, known)}; known fields: {', '.join(known)}",
                          f"remove {self.where}.{key} or correct its spelling")

    def entry_name(self, raw: Mapping[str, Any], seen: dict[str, int], *, max_length: int, names_what: str,
                   example: str) -> str:
        """The entry's ``name``: required, a DNS-1035 label of at most ``max_length``, unique in the list."""
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            self.fail("name", name, "is required", f"set {self.where}.name, e.g. {example}")
            return f"{self.list_key}-{self.index}"
        if not DNS_1035.fullmatch(name) or len(name) > max_length:
            self.fail("name", name, f"must be a DNS-1035 label of at most {max_length} characters (lower-case "
                      f"letters, digits and '-', starting with a letter): it names {names_what}",
                      f"set {self.where}.name to e.g. {suggest_name(name, max_length, example)}")
        elif name in seen:
            self.fail("name", name, f"duplicates {self.list_key}[{seen[name]}].name; each needs its own name",
                      f"rename {self.where}")
        else:
            seen[name] = self.index
        return name

    def quantity(self, key: str, low: Decimal, high: Decimal, example: str, what: str) -> tuple[str, Decimal]:
        """A Kubernetes quantity (``4``, ``500m``, ``32Gi``) within ``[low, high]`` base units."""
        value = self.get(key)
        text = str(value) if is_number(value) else value
        try:
            amount = parse_quantity(text) if isinstance(text, str) else None
        except (ValueError, InvalidOperation):
            amount = None
        if amount is None:
            self.fail(key, value, f"must be a Kubernetes quantity such as {example}",
                      self.how_to_set(key, repr(example)))
            default = str(self._default(key, example))
            return default, parse_quantity(default)
        if not low <= amount <= high:
            self.fail(key, value, what, self.how_to_set(key, "a value within that bound"))
        return text, amount


def suggest_name(name: str, max_length: int, fallback: str) -> str:
    """A valid DNS-1035 name of at most ``max_length`` characters close to ``name``."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    cleaned = re.sub(r"^[^a-z]+", "", cleaned)[:max_length].strip("-")
    return cleaned or fallback
