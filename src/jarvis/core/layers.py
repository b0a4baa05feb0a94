"""The six layers, in execution order. Structural, not business configuration."""

from __future__ import annotations

from enum import StrEnum


class Layer(StrEnum):
    EXPERIENCE = "Experience"
    META_BRAIN = "Meta Brain"
    ROLE = "Role"
    PROCESS = "Process"
    SYSTEM = "System"
    INTERFACE = "Interface"


LAYER_ORDER: tuple[Layer, ...] = tuple(Layer)

LAYER_DESCRIPTIONS: dict[Layer, str] = {
    Layer.EXPERIENCE: (
        "Branding, tenant configuration and the visual experience each persona sees."
    ),
    Layer.META_BRAIN: (
        "Central orchestration: understands the command, plans and coordinates the agents."
    ),
    Layer.ROLE: (
        "Persona-specific assistants such as Rachel Thompson's underwriting desk or John "
        "Stevens' IT service desk; can generate new personas."
    ),
    Layer.PROCESS: (
        "Multi-step business workflows: submission intake, risk assessment, claims, "
        "incident handling."
    ),
    Layer.SYSTEM: ("Document processing, data extraction, classification and security filtering."),
    Layer.INTERFACE: ("The edges: voice, API endpoints, e-mail and external integrations."),
}


def layer_position(layer: Layer | str) -> int:
    """0-based position of ``layer`` in execution order."""
    return LAYER_ORDER.index(Layer(layer))
