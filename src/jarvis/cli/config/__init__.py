"""``jarvis config``: read and change configuration from the command line.

Every command goes through the ConfigService and ``jarvis.config.snapshots``, so the CLI
obeys the API's rules (schemas, scopes, effective dating, four-eyes approval, audit
ledger, change log) and its changes reach running servers. Writes act as the system
actor ``cli`` unless ``--as`` names an admin; deciding a change request needs ``--as``.
"""

from jarvis.cli.config.shared import app

# isort: off
# Imported in this order to register commands in it: values, snapshots, then requests.
from jarvis.cli.config import values
from jarvis.cli.config import snapshots
from jarvis.cli.config import requests

# isort: on

__all__ = ["app", "requests", "snapshots", "values"]
