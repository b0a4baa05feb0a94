"""Role personas: who an agent works for and how their workspace looks."""
