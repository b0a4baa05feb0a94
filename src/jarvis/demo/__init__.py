"""Demo data: personas, agents in all six layers, and a user per persona."""
