"""Readable sentences for validation errors: the daemon's settings and agent configurations alike.

pydantic's own messages name its internals (`constrained-float`, `literal['fast']`, "Input should be a
valid number, unable to parse string as a number"); an operator needs the setting, where it can be set
(its environment variable), the value given (never a secret's) and what is allowed. One line per
setting: the branches of a union (a number or "fast") are merged into one sentence, and an unknown key
comes with the nearest known one ("did you mean ...?").
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

Path = tuple[str, ...]

PATTERN_MEANINGS: Final[dict[str, str]] = {
    r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$": "a BingX symbol: BASE-QUOTE in upper case, e.g. BTC-USDT",
    r"^https?://\S+$": "an http:// or https:// URL",
    r"^wss?://\S+$": "a ws:// or wss:// URL",
    r"^(hold|momentum|ema_cross|agent:[0-9a-fA-F-]{36})$": "hold, momentum, ema_cross or agent:<version id>",
    r"^[a-z0-9][a-z0-9_.-]{0,63}$": "a name of lower-case letters, digits, '_', '.' and '-' (up to 64, "
    "starting with a letter or a digit)",
}
"""What the patterns of our fields mean, in words."""

_NOT_SHOWN: Final = "[REDACTED]"


def describe_errors(
    error: ValidationError,
    *,
    model: type[BaseModel] | None = None,
    document: Mapping[str, Any] | None = None,
    prefix: Path = (),
    env_names: Mapping[Path, str] | None = None,
    secrets: Iterable[Path] = (),
) -> list[str]:
    """One readable line per setting at fault.

    `model` is the validated model (to tell field names from pydantic's union tags, and to suggest the
    nearest key); `document` the input, from the tree's root (to show values); `prefix` the path of what
    was validated inside the tree (for a single value, e.g. one environment variable); `env_names`
    the environment variable of each path; values of `secrets` paths are never shown.
    """
    env_names = env_names or {}
    secret_paths = frozenset(secrets)
    groups: dict[tuple[Path, int | None], list[dict[str, Any]]] = {}
    unknown: list[tuple[Path, str]] = []
    for detail in error.errors():
        loc = tuple(detail["loc"])
        if detail["type"] == "extra_forbidden":
            parent, _ = _split(loc[:-1], model)
            unknown.append((prefix + parent, str(loc[-1])))
            continue
        path, item = _split(loc, model)
        groups.setdefault((prefix + path, item), []).append(dict(detail))
    # An item's error makes the container's "too short after validation" a consequence, not a cause.
    failing_items = {path for path, item in groups if item is not None}
    lines = []
    for (path, item), details in groups.items():
        if item is None and path in failing_items and all(d["type"] == "too_short" for d in details):
            continue
        lines.append(_line(path, item, details, document, env_names, path in secret_paths))
    for parent, key in unknown:
        lines.append(_unknown_line(parent, key, model, prefix))
    return lines


def nearest(word: str, choices: Iterable[str]) -> str | None:
    """The closest of `choices` to a mistyped `word`, if any is close."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def shown(value: Any) -> str:
    """A value as the operator wrote it (TOML-like: strings quoted, lists in brackets)."""
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except ValueError:
        return repr(value)


# ---------------------------------------------------------------------------------------------- internals


def _line(
    path: Path,
    item: int | None,
    details: Sequence[dict[str, Any]],
    document: Mapping[str, Any] | None,
    env_names: Mapping[Path, str],
    secret: bool,
) -> str:
    name = ".".join(path) or "(top level)"
    variable = env_names.get(path)
    where = f"{name} ({variable})" if variable else name
    value = _lookup(document, path) if document is not None else _MISSING
    if value is _MISSING and item is None and "input" in details[0]:
        value = details[0]["input"]
    if value is not _MISSING and not isinstance(value, Mapping) and path:
        where += f" = {_NOT_SHOWN if secret else shown(value)}"
    custom = [_custom(d) for d in details if d["type"] in ("value_error", "assertion_error")]
    if custom:
        text = "; ".join(custom)
        # A validator's message that already names its settings needs no prefix ("market_data.pairs ...").
        if not path or (name in text and isinstance(value, Mapping | _Missing)):
            return text
        return f"{where}: {text}"
    if any(d["type"] == "missing" for d in details):
        return f"{where}: is required"
    phrases = list(dict.fromkeys(_allowed(d) for d in details))
    sentence = "must be " + " or ".join(phrases)
    if item is not None:
        given = "" if secret else f" ({shown(details[0].get('input'))})"
        return f"{where}: item {item + 1}{given} {sentence}"
    return f"{where}: {sentence}"


def _unknown_line(parent: Path, key: str, model: type[BaseModel] | None, prefix: Path) -> str:
    name = ".".join((*parent, key))
    section = _model_at(model, parent[len(prefix) :])
    known = _field_names(section) if section is not None else {}
    guess = nearest(key, known)
    if guess is not None:
        return f"{name}: unknown key; did you mean {'.'.join((*parent, guess))}?"
    where = f"[{'.'.join(parent)}]" if parent else "the top level"
    listed = ", ".join(sorted(known)) if known else "none"
    return f"{name}: unknown key; {where} takes {listed}"


def _allowed(detail: Mapping[str, Any]) -> str:
    """What the value must be, as the end of "must be ..."."""
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {
            "greater_than": "greater than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[kind]
        bound = next(iter(ctx.values()), "?")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"{words} {bound}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "a whole number"
    if kind in ("float_type", "float_parsing", "decimal_type", "decimal_parsing", "finite_number"):
        return "a number"
    if kind in ("bool_type", "bool_parsing"):
        return "true or false"
    if kind in ("string_type",):
        return "a string (in quotes)"
    if kind == "literal_error":
        return _one_of(str(ctx.get("expected", "")))
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return PATTERN_MEANINGS.get(pattern, f"text matching {pattern}")
    if kind == "string_too_short":
        return "non-empty" if ctx.get("min_length") == 1 else f"at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        least = ctx.get("min_length")
        return "a non-empty list" if least == 1 else f"a list of at least {least} items"
    if kind == "too_long":
        return f"a list of at most {ctx.get('max_length')} items"
    if kind in ("tuple_type", "list_type", "set_type", "frozen_set_type"):
        return 'a list, e.g. ["a", "b"]'
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "a table (a [section])"
    if kind in ("path_type", "path_parsing"):
        return "a file path"
    message = str(detail.get("msg", kind))
    return re.sub(r"^(Input|Value) should be ", "", message)


def _one_of(expected: str) -> str:
    """pydantic's "'a', 'b' or 'c'" as `"a", "b" or "c"` (one value: just it)."""
    values = re.findall(r"'((?:[^'\\]|\\.)*)'", expected)
    if not values:
        return expected
    quoted = [shown(value) for value in values]
    if len(quoted) == 1:
        return quoted[0]
    return "one of " + ", ".join(quoted)


def _custom(detail: Mapping[str, Any]) -> str:
    return re.sub(r"^(Value error|Assertion failed), ", "", str(detail.get("msg", "")))


def _split(loc: Sequence[Any], model: type[BaseModel] | None) -> tuple[Path, int | None]:
    """The setting's path and the list item at fault (if any), without pydantic's union member tags
    (`constrained-float`, `literal['fast']`, `function-after[...]`)."""
    path: list[str] = []
    item: int | None = None
    current = model
    for part in loc:
        if isinstance(part, int):
            item = part
            continue
        fields = _field_names(current) if current is not None else {}
        if part in fields:
            path.append(part)
            current = _model_of(fields[part])
        elif current is None and model is None and not _looks_like_tag(part):
            path.append(part)
        # else: a union member's tag, not a key
    return tuple(path), item


def _looks_like_tag(part: str) -> bool:
    return bool(re.search(r"[\[\]'(-]", part)) or part in ("str", "int", "float", "bool", "decimal", "none")


def _field_names(model: type[BaseModel]) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        names[field.alias or name] = field.annotation
    return names


def _model_of(annotation: Any) -> type[BaseModel] | None:
    members = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    for member in members:
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _model_at(model: type[BaseModel] | None, path: Path) -> type[BaseModel] | None:
    current = model
    for part in path:
        if current is None:
            return None
        current = _model_of(_field_names(current).get(part))
    return current


class _Missing:
    pass


_MISSING: Final = _Missing()


def _lookup(document: Mapping[str, Any], path: Path) -> Any:
    node: Any = document
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node
