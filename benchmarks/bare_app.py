"""Baseline for agents_list.py: a bare FastAPI route returning a fixed JSON document.

The document (the real endpoint's answer, captured before the run) is read once at start
and serialised by FastAPI on every request, so the difference to the real route is the
database work and JARVIS's own code.
"""

import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

_PAYLOAD: Any = json.loads(Path(os.environ["BARE_PAYLOAD_FILE"]).read_text())

app = FastAPI()


@app.get("/api/agents")
async def agents() -> Any:
    return _PAYLOAD
