"""FastAPI dependency: the application's ConfigService."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from jarvis.config.service import ConfigService
from jarvis.kit.app_state import StateKey

CONFIG: StateKey[ConfigService] = StateKey("config", "the config service")


def get_config(request: HTTPConnection) -> ConfigService:
    """The application's ConfigService."""
    return CONFIG.get(request)


Config = Annotated[ConfigService, Depends(get_config)]
