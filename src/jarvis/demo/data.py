"""What the demo contains, as ``jarvis seed demo`` stores it: the scenario files in
``jarvis/demo/scenarios/`` (edited there), read and checked once by ``jarvis.demo.loader``.
"""

from __future__ import annotations

from jarvis.agents.schemas import AgentCreate, AgentMetrics
from jarvis.config.rules import RuleSetIn, TemplateIn
from jarvis.demo.loader import Demo, DemoCommand, DemoUser, load_demo
from jarvis.personas.schemas import PersonaRegister

DEMO: Demo = load_demo()

# The admin persona first, then each scenario's personas.
PERSONAS: tuple[PersonaRegister, ...] = DEMO.personas
# Granted to each demo persona when the seed registers it (admin holds every permission).
PERSONA_PERMISSIONS: dict[str, tuple[str, ...]] = DEMO.permissions
USERS: tuple[DemoUser, ...] = DEMO.users
# Layer by layer (Experience first); within a layer, in the order of the files.
AGENTS: tuple[tuple[AgentCreate, AgentMetrics], ...] = DEMO.agents
RULE_SETS: tuple[RuleSetIn, ...] = DEMO.rule_sets
TEMPLATES: tuple[TemplateIn, ...] = DEMO.templates
# The demo users' first commands (``jarvis seed demo --with-history``), in the order they run.
HISTORY: tuple[DemoCommand, ...] = DEMO.history
