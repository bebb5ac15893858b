"""Builds Settings from default.toml, an optional TOML file and ACADEMIA_* variables.

Each key's name is unique across sections, so an environment variable names a key
without its section: ACADEMIA_HTTP_PORT sets [server] http_port.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from config.settings import RungSettings, Settings

DEFAULT_FILE = Path(__file__).with_name("default.toml")
ENV_PREFIX = "ACADEMIA_"


class SettingsError(ValueError):
    """A settings file or variable that cannot be used; the message says which."""


def _coerce(name: str, value: object, kind: type) -> object:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise SettingsError(f"{name}: expected a whole number, got {value!r}")
        try:
            return int(str(value))
        except ValueError:
            raise SettingsError(f"{name}: expected a whole number, got {value!r}") from None
    if kind is Path:
        return Path(str(value))
    if kind is tuple:
        return _ladder(name, value)
    return str(value)


def _ladder(name: str, value: object) -> tuple[RungSettings, ...]:
    """A ladder: TOML's array of tables, or JSON (a list of objects) in a variable."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SettingsError(f"{name}: expected a JSON list of rungs: {exc}") from None
    if not isinstance(value, list) or not value:
        raise SettingsError(f"{name}: expected a non-empty list of rungs")
    fields = {f.name for f in dataclasses.fields(RungSettings)}
    rungs = []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != set(fields):
            raise SettingsError(f"{name}[{index}]: a rung has exactly the keys {sorted(fields)}")
        try:
            rung = RungSettings(
                name=str(entry["name"]),
                label=str(entry["label"]),
                height=int(entry["height"]),
                video_kbps=int(entry["video_kbps"]),
                audio_kbps=int(entry["audio_kbps"]),
            )
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{name}[{index}]: {exc}") from None
        if rung.height < 0 or rung.video_kbps < 0 or rung.audio_kbps < 0:
            raise SettingsError(f"{name}[{index}]: heights and bitrates cannot be negative")
        rungs.append(rung)
    if len({rung.name for rung in rungs}) != len(rungs):
        raise SettingsError(f"{name}: rung names must be unique")
    return tuple(rungs)


def _section_types(section_cls: type) -> dict[str, type]:
    kinds = {"int": int, "bool": bool, "str": str, "Path": Path,
             "tuple[RungSettings, ...]": tuple}
    return {f.name: kinds[str(f.type)] for f in dataclasses.fields(section_cls)}


def load_settings(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then the file, then the environment: the last word wins."""
    environ = os.environ if environ is None else environ
    layers: list[Mapping[str, Any]] = [tomllib.loads(DEFAULT_FILE.read_text())]
    if config_file is not None:
        try:
            layers.append(tomllib.loads(config_file.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read {config_file}: {exc}") from None

    sections: dict[str, Any] = {}
    for section in dataclasses.fields(Settings):
        section_cls = section.default_factory
        assert isinstance(section_cls, type)
        types = _section_types(section_cls)
        values: dict[str, object] = {}
        for layer in layers:
            given = layer.get(section.name, {})
            unknown = set(given) - set(types)
            if unknown:
                raise SettingsError(f"[{section.name}]: unknown keys {sorted(unknown)}")
            for key, value in given.items():
                values[key] = _coerce(key, value, types[key])
        for key, kind in types.items():
            env_name = ENV_PREFIX + key.upper()
            if env_name in environ:
                values[key] = _coerce(env_name, environ[env_name], kind)
        sections[section.name] = section_cls(**values)
    return Settings(**sections)
