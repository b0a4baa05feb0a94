"""Sign-in sessions: starting and ending them, their cookies, listing, revoking, sweeping.

Other domains reach what they need of sessions here: ``live_credentials`` (the realtime
hub re-checks its connections' credentials) and ``SessionSweeper`` (``main`` runs one).
"""

from jarvis.auth.sessions.service import SessionSweeper, live_credentials

__all__ = ["SessionSweeper", "live_credentials"]
