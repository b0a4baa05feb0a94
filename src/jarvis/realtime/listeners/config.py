"""The configuration channel: ``config_changed`` messages to the ``subscribe-config``
clients (the bus may lose some; a client that must not miss one re-reads what it shows)."""

from __future__ import annotations

from typing import Final

from jarvis.config.service import CONFIG_CHANNEL
from jarvis.kit.bus import Message
from jarvis.realtime.channel import Client, encode

CONFIG_CHANGED: Final = "config_changed"


class ConfigListener:
    """Passes each configuration change on to the clients that subscribed to them."""

    channel: Final = CONFIG_CHANNEL

    def __init__(self) -> None:
        self.subscribers: set[Client] = set()

    def subscribe(self, client: Client) -> None:
        """Configuration changes go to ``client`` from now on."""
        self.subscribers.add(client)

    def unsubscribe(self, client: Client) -> None:
        """No more configuration changes for ``client``."""
        self.subscribers.discard(client)

    def forget(self, client: Client) -> None:
        """``client`` is gone."""
        self.subscribers.discard(client)

    def on_message(self, message: Message) -> None:
        """A message of the channel: a change goes to every subscriber, as one text."""
        if message.get("type") != CONFIG_CHANGED or not self.subscribers:
            return
        text = encode(message)
        for client in list(self.subscribers):
            client.push(text)

    def on_gap(self) -> None:
        """Lost changes are not replayed (there is no store of them to replay from)."""
