"""Sign-in sessions: starting and ending them, their cookies, listing, revoking, sweeping.

Other domains reach what they need of sessions here: ``live_credentials`` (the realtime
hub re-checks its connections' credentials) and ``SessionSweeper`` (``main`` runs one).
"""

from jarvis.auth.sessions.service import live_credentials
from jarvis.auth.sessions.sweeper import SessionSweeper

__all__ = ["SessionSweeper", "live_credentials"]
