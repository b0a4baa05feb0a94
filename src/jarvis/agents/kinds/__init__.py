"""Agent kinds: the code an agent runs, chosen by its ``kind`` and set up by its ``config``."""
