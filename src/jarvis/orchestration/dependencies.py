"""FastAPI dependencies: the event bus and the dispatcher the app was built with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jarvis.kit.app_state import StateKey
from jarvis.kit.bus import BUS, EventBus
from jarvis.orchestration.dispatcher import Dispatcher
from jarvis.orchestration.engine import Engine

DISPATCHER: StateKey[Dispatcher] = StateKey("dispatcher", "the execution dispatcher")
ENGINE: StateKey[Engine] = StateKey("engine", "the execution engine")


def get_bus(request: Request) -> EventBus:
    """The application's event bus."""
    return BUS.get(request)


def get_dispatcher(request: Request) -> Dispatcher:
    """The application's dispatcher (in-process or Taskiq)."""
    return DISPATCHER.get(request)


Bus = Annotated[EventBus, Depends(get_bus)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
