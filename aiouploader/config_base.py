"""What every settings model shares, the plugins' too: unknown names refused, sizes as people write them, and
the errors of a whole model in one line."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from .sizes import parse_size

Size = Annotated[int, BeforeValidator(parse_size)]


def did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


class ConfigError(Exception):
    """An unusable setting; the message names it and says what is wrong."""


class Settings(BaseModel):
    """Base of every settings model, the plugins' included: unknown names are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


M = TypeVar("M", bound=BaseModel)


def parse_settings(model: type[M], settings: Mapping[str, Any]) -> M:
    """Validate a plugin's settings; a ``ValueError`` whose one line names every bad setting, ``; `` between."""
    try:
        return model.model_validate(settings)
    except ValidationError as exc:
        problems = dict.fromkeys(
            f"{_location(error['loc']) or 'settings'}: {str(error['msg']).removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        raise ValueError("; ".join(problems)) from None
