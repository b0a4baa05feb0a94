"""The hub's listeners, one per bus channel: execution events, configuration changes and
credential revocations (see ``jarvis.realtime.hub``)."""
