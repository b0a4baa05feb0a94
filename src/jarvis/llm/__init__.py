"""LLM providers behind one task-level protocol: ``classify``, ``extract``, ``generate``."""
