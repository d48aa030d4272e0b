"""Configuration as code: read and write configuration files (YAML or JSON, one schema).

The schema is documented in docs/config-schema.md and checked in `config_schema`; `config_export`
writes an organisation's configuration and `config_import` makes the database equal a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .config_export import UnknownOrganisation, export_config, organisation_slugs
from .config_import import Changes, ImportReport, import_config

__all__ = [
    "Changes",
    "ConfigFileError",
    "ImportReport",
    "UnknownOrganisation",
    "dump_config",
    "export_config",
    "import_config",
    "organisation_slugs",
    "parse_config",
    "read_config_file",
]


class ConfigFileError(ValueError):
    """A file that is not valid YAML or JSON at all; the message names the line."""


def parse_config(content: str, *, name: str = "") -> Any:
    """YAML or JSON, told apart by the file's extension, else by its first character."""
    suffix = Path(name).suffix.lower()
    is_json = suffix == ".json" or (suffix not in {".yaml", ".yml"} and content.lstrip().startswith("{"))
    if is_json:
        try:
            return json.loads(content)
        except json.JSONDecodeError as exc:
            raise ConfigFileError(
                f"{name or 'JSON'}: line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
    try:
        return yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{problem} ({context})" if context else problem
        raise ConfigFileError(f"{name or 'YAML'}: {where}{detail}") from exc


def read_config_file(path: str | Path) -> Any:
    path = Path(path)
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: cannot read ({exc})") from exc
    return parse_config(content, name=str(path))


def dump_config(document: dict[str, Any], fmt: str = "yaml") -> str:
    if fmt == "json":
        return json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=100)
