"""FastAPI dependencies: the event bus and the dispatcher the app was built with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jarvis.kit.bus import EventBus
from jarvis.orchestration.dispatcher import Dispatcher


def get_bus(request: Request) -> EventBus:
    bus: EventBus = request.app.state.bus
    return bus


def get_dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


Bus = Annotated[EventBus, Depends(get_bus)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
