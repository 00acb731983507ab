"""Configuration: one dataclass per stage, loaded from YAML and overridden by flags.

A key that does not exist, a value of the wrong type or out of range is a one-line `ConfigError`
naming the key, raised before any expensive work starts. The resolved config is saved beside
every artifact (`config.yaml`), so a run can be replayed from its own output folder.
Standard library + PyYAML.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any

from rise.errors import InputError


class ConfigError(InputError):
    """Bad configuration; the message names the key."""


def _origin_types(tp) -> tuple[Any, list]:
    origin = typing.get_origin(tp)
    return origin, list(typing.get_args(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert `value` against the annotation `tp` (str, int, float, bool, Optional, list, dict)."""
    origin, args = _origin_types(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):  # an item of a list of sections (eval.tasks)
        return _section(value, tp, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def _section(value: Any, tp: Any, key: str) -> Any:
    """A section given as a list item: a mapping, or (from a CLI flag) its YAML text, such as
    `--eval.tasks '{task: gsm8k, limit: 50}'`; its keys are checked like any section's."""
    if isinstance(value, str):
        import yaml

        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    return from_dict(tp, value, prefix=f"{key}.")


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls, data: dict[str, Any] | None, prefix: str = "", base=None):
    """Build dataclass `cls` from a (nested) dict, rejecting unknown keys with a suggestion.

    Keys not given keep the values of `base` (default: `cls()`), also inside nested sections, so
    that `--set collect.turns=3` keeps every other default of `collect`, including defaults that
    a parent config sets for its sections."""
    data = dict(data or {})
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    try:
        base = base if base is not None else cls()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix or cls.__name__ + ': '}{e}") from None
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{full}'{hint}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{full}: expected a mapping")
            kwargs[key] = from_dict(tp, value, prefix=f"{full}.", base=getattr(base, key))
        else:
            kwargs[key] = _coerce(value, tp, full)
    try:
        return dataclasses.replace(base, **kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix or cls.__name__ + ': '}{e}") from None


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = data
    for p in parts[:-1]:
        nxt = cur.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{dotted}: '{p}' is not a section")
        cur = nxt
    cur[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`key.sub=value` -> (key.sub, YAML-parsed value)."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: malformed YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    return data


def resolve(cls, config_path: str | None = None, overrides: dict[str, Any] | None = None):
    """YAML file (optional) + dotted overrides -> a validated `cls` instance."""
    data = load_yaml(config_path) if config_path else {}
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return from_dict(cls, data)


def dump_yaml(cfg) -> str:
    import yaml

    return yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)


def save_config(path: str | os.PathLike, cfg) -> None:
    from rise.records import write_text

    write_text(path, dump_yaml(cfg))


def flag_names(cls, prefix: str = "") -> list[tuple[str, Any]]:
    """Every leaf field of a (nested) dataclass as (dotted name, annotation); for CLI flags."""
    return [(spec.name, spec.type) for spec in flag_specs(cls, prefix)]


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    """One leaf config field as the CLI shows it."""

    name: str        # dotted key, e.g. "sampling.temperature"
    section: str     # dotted section it belongs to ("" for the top level)
    type: Any        # the annotation
    default: Any     # the value a run gets when nothing sets it (parent defaults included)
    help: str        # the field's source comment ("" when it has none)
    section_doc: str = ""  # first line of the section class's docstring, if it has one


def flag_specs(cls, prefix: str = "", default=None) -> list[FlagSpec]:
    """Every leaf field of a (nested) dataclass with its default and help text, in source order.

    Defaults come from an instance (`cls()` unless given), so a section whose parent sets other
    defaults (RunConfig's `collect`) shows the values a run really gets."""
    hints = _hints(cls)
    if default is None:
        try:
            default = cls()
        except (TypeError, ValueError):
            default = None
    docs = field_comments(cls)
    doc = class_summary(cls) if prefix else ""
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        value = getattr(default, f.name, None) if default is not None else None
        if dataclasses.is_dataclass(tp):
            out.extend(flag_specs(tp, f"{prefix}{f.name}.", value))
        else:
            out.append(FlagSpec(f"{prefix}{f.name}", prefix.rstrip("."), tp, value,
                                docs.get(f.name, ""), doc))
    return out


def class_summary(cls) -> str:
    """The first line of a class's own docstring ("" for dataclass's generated signature)."""
    doc = (cls.__doc__ or "").strip()
    if not doc or doc.startswith(f"{cls.__name__}("):
        return ""
    return doc.splitlines()[0]


def field_comments(cls) -> dict[str, str]:
    """Each dataclass field's comment in the source: the comment at the end of its line, else the
    comment lines right above it. The comments are the documentation of the config keys, so
    `--help` reads them instead of a second copy kept in field metadata."""
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a frozen app, a class made at run time)
        return {}
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in skip:
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    out = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        text = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        if not text:
            line = node.lineno - 1
            while line in comments and line not in code_lines:
                text.insert(0, comments[line])
                line -= 1
        if text:
            out[node.target.id] = " ".join(text)
    return out
