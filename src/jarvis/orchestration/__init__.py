"""The orchestration engine: commands through the six layers, recorded step by step."""
