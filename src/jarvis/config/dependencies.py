"""FastAPI dependency: the application's ConfigService."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jarvis.config.service import ConfigService


def get_config(request: Request) -> ConfigService:
    config: ConfigService = request.app.state.config
    return config


Config = Annotated[ConfigService, Depends(get_config)]
