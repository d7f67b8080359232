"""One strict reader for every YAML file the project takes from users: recipes (``recipes/``),
data-prep configs (``data_prep/<name>.yaml``), evaluation configs (``eval/<name>.yaml``) and merge
recipes.

* :func:`read_mapping`: UTF-8 only, PyYAML's safe loader, duplicate keys refused (PyYAML keeps the
  last one silently), anchors/aliases refused (an alias bomb expands exponentially), booleans are
  ``true``/``false`` only (YAML 1.1 would read ``no`` as False). Problems are one line
  ``<file>: <key>: <problem>`` (:class:`ConfigError`, an :class:`~astrollama.errors.InputError`:
  exit 2).
* :func:`check_keys`: the one unknown-key refusal for a mapping whose keys are fixed (prompt files,
  DeepSpeed JSON configs): ``<file>: <where.key>: unknown key (allowed here: ...)``.
* :func:`check_template`: the placeholders of a ``str.format`` template (prompt files), checked
  when the file is loaded: an unknown or misspelt placeholder, a missing required one, or a stray
  brace is one line naming the file and key, never a failure per paper later.
* :func:`section_tokens`: a config section whose keys ARE a command's options
  (``--near-dup-jaccard`` is ``near_dup_jaccard``), turned into command-line tokens after the
  flag's own type, range and choices check, so nothing is defined twice. ``astrollama data`` and
  ``astrollama eval`` read their ``--config`` files this way (astrollama.data.config,
  astrollama.evaluation.config).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
from pathlib import Path
from typing import Any

import yaml

from astrollama.cli_args import is_number_type
from astrollama.errors import InputError


class ConfigError(InputError):
    """A problem in a user's YAML file. ``str(e)`` is one line: ``<file>: <dotted.key>: <problem>``."""

    def __init__(self, file: str | os.PathLike[str], key: str, problem: str) -> None:
        self.file, self.key, self.problem = str(file), key, " ".join(str(problem).split())
        super().__init__(f"{self.file}: {self.key}: {self.problem}")


# ----------------------------------------------------------------------------------------------
# YAML: safe loader that also refuses duplicate keys (PyYAML silently keeps the last one).
# ----------------------------------------------------------------------------------------------
class StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        # Aliases are refused outright: "billion laughs" nests them to expand exponentially, and no
        # config needs them (recipes share values with `base:` instead).
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"YAML alias *{event.anchor} is not allowed (write the value out; recipes share values with base:)",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# Booleans are true/false only (YAML 1.2). YAML 1.1 also reads yes/no/on/off as booleans, which
# turns a value like `report_to: no` into False behind the user's back; here they stay strings.
_BOOL_TAG = "tag:yaml.org,2002:bool"
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def yaml_load(text: str, where: str, error: type[ConfigError] | None = None) -> Any:
    """The YAML document in ``text``; a syntax problem is ``error(where, "(yaml)", ...)``."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        pos = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise (error or ConfigError)(where, "(yaml)", f"{pos}{problem}") from None


_NUMBER_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def looks_like_number(value: Any) -> bool:
    return isinstance(value, str) and bool(_NUMBER_TEXT.match(value.strip()))


def number_hint(value: str) -> str:
    mant, _, exp = value.strip().lower().partition("e")
    if exp and "." not in mant:  # PyYAML (YAML 1.1) reads 2e-5 unquoted as a string
        return f"{value!r} is a string, not a number (YAML 1.1 reads {value} as text); write {mant}.0e{exp}"
    return f"{value!r} is a string, not a number; remove the quotes"


def read_mapping(
    path: str | os.PathLike[str], error: type[ConfigError] = ConfigError, what: str = "a config file"
) -> dict[str, Any]:
    """The top-level mapping of the YAML file at ``path`` (an empty file is ``{}``)."""
    from astrollama.untrusted import read_text

    path = Path(path)
    try:  # regular file, size-capped, UTF-8 (astrollama.untrusted)
        text = read_text(path, "config")
    except InputError as e:
        problem = str(e).removeprefix(f"{path}: ")
        if "directory" in problem:
            problem = f"is a directory, not {what}"
        raise error(path, "(file)", problem) from None
    data = yaml_load(text, str(path), error)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(path, "(top level)", f"must be a mapping of sections, got {type(data).__name__}")
    return data


def check_keys(
    data: dict[str, Any],
    allowed: Any,
    file: str | os.PathLike[str],
    where: str = "",
    error: type[ConfigError] = ConfigError,
) -> None:
    """Refuse a key of ``data`` not in ``allowed`` (one line naming the file and the dotted key)."""
    for key in data:
        if key not in allowed:
            dotted = f"{where}.{key}" if where else str(key)
            raise error(file, dotted, f"unknown key (allowed here: {', '.join(sorted(map(str, allowed)))})")


def check_template(
    text: str,
    allowed: Any,
    file: str | os.PathLike[str],
    key: str,
    *,
    required: Any = (),
    error: type[ConfigError] = ConfigError,
) -> set[str]:
    """The ``{name}`` placeholders of the ``str.format`` template ``text``, checked now.

    Every placeholder must be a plain name in ``allowed`` (``{budget}``, not ``{budget.x}``,
    ``{0}`` or ``{}``), every name in ``required`` must appear, and literal braces must be doubled
    (``{{``); the template is also formatted once with sample values, so a bad format spec fails here.
    """
    import string

    try:
        fields = [(f, spec) for _, f, spec, _conv in string.Formatter().parse(text) if f is not None]
    except ValueError as e:  # a single { or }
        raise error(file, key, f"not a valid template ({e}; write a literal brace as {{{{ or }}}})") from None
    names: set[str] = set()
    for field, spec in fields:
        if field not in allowed:
            why = "a positional placeholder" if field == "" or field.isdigit() else "unknown placeholder"
            raise error(
                file,
                key,
                f"{why} {{{field}}} (allowed: {', '.join('{' + a + '}' for a in sorted(allowed))}; "
                "write a literal brace as {{ or }})",
            )
        if spec and "{" in spec:
            raise error(file, key, f"placeholder {{{field}}}: nested placeholders are not allowed")
        names.add(field)
    try:
        text.format(**{name: 1 for name in allowed})
    except (ValueError, TypeError) as e:  # a format spec the sample value cannot take
        raise error(file, key, f"not a valid template ({e})") from None
    missing = [r for r in required if r not in names]
    if missing:
        more = f" (and {', '.join('{' + m + '}' for m in missing[1:])})" if len(missing) > 1 else ""
        raise error(file, key, f"lacks the placeholder {{{missing[0]}}}{more}")
    return names


# ----------------------------------------------------------------------------------------------
# Config sections whose keys are a command's options
# ----------------------------------------------------------------------------------------------


def scalar(value: Any, action: argparse.Action, file: str, key: str) -> str:
    """``value`` as the command-line token of ``action``, after the flag's own type/range check."""
    if value is None:
        raise ConfigError(file, key, "null is not a value here; leave the key out for the default")
    if isinstance(value, (dict, list)):
        raise ConfigError(file, key, f"expected a single value, got {type(value).__name__}")
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        value = value.isoformat()  # YAML reads an unquoted 2023-01-01 as a date
    if is_number_type(action.type) or action.type in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if looks_like_number(value):
                raise ConfigError(file, key, number_hint(value))
            raise ConfigError(file, key, f"expected a number, got {type(value).__name__} {value!r}")
    elif not isinstance(value, str):
        raise ConfigError(file, key, f"expected a string, got {type(value).__name__} {value!r}")
    text = str(value)
    if action.type is not None:
        try:
            parsed = action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            raise ConfigError(file, key, str(e) or f"invalid value {value!r}") from None
    else:
        parsed = text
    if action.choices is not None and parsed not in action.choices:
        raise ConfigError(file, key, f"must be one of {', '.join(map(str, action.choices))}, got {value!r}")
    return text


def section_tokens(
    section: dict[str, Any], parser: argparse.ArgumentParser, file: str, where: str
) -> list[str]:
    """Command-line tokens for one section's keys (options first, then positionals)."""
    by_key: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action.dest in ("help", "config") or isinstance(action, argparse._SubParsersAction):
            continue
        longs = [o for o in action.option_strings if o.startswith("--")]
        key = (
            longs[0][2:].replace("-", "_") if longs else (action.dest if not action.option_strings else None)
        )
        if key:
            by_key[key] = action
    opts: list[str] = []
    positionals: list[str] = []
    for key, value in section.items():
        dotted = f"{where}.{key}"
        action = by_key.get(key) if isinstance(key, str) else None
        if action is None:
            raise ConfigError(file, dotted, f"unknown key (allowed here: {', '.join(sorted(by_key))})")
        flag = (
            []
            if not action.option_strings
            else [next(o for o in action.option_strings if o.startswith("--"))]
        )
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise ConfigError(
                    file, dotted, f"expected true or false, got {type(value).__name__} {value!r}"
                )
            opts += flag if value == isinstance(action, argparse._StoreTrueAction) else []
            continue
        if isinstance(action, argparse._AppendAction):  # a repeatable flag: a list, one flag per item
            if not isinstance(value, list):
                raise ConfigError(file, dotted, f"expected a list, got {type(value).__name__} {value!r}")
            for i, v in enumerate(value):
                opts.append(f"{flag[0]}={scalar(v, action, file, f'{dotted}[{i}]')}")
            continue
        if action.nargs in ("+", "*"):
            if not isinstance(value, list):
                raise ConfigError(file, dotted, f"expected a list, got {type(value).__name__} {value!r}")
            if not value and action.nargs == "+":
                raise ConfigError(file, dotted, "expected at least one value")
            tokens = [scalar(v, action, file, f"{dotted}[{i}]") for i, v in enumerate(value)]
            (positionals if not flag else opts).extend(flag + tokens)
        elif flag:  # --flag=value: a value starting with "-" stays a value
            opts.append(f"{flag[0]}={scalar(value, action, file, dotted)}")
        else:
            positionals.append(scalar(value, action, file, dotted))
    return opts + positionals


def get_section(data: dict[str, Any], name: str, file: str) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(file, name, f"must be a mapping of options, got {type(value).__name__}")
    return value


def config_file(argv: list[str], error: type[InputError] = InputError) -> str | None:
    """The FILE of ``--config FILE`` / ``--config=FILE`` in ``argv`` (None: not given)."""
    files = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    files += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    if len(files) > 1:
        raise error("--config: given more than once")
    return files[0] if files else None
