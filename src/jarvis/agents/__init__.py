"""The agent registry: agents in six layers, their versions."""
