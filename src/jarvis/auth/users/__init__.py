"""User accounts: creating them, passwords and lockout, administration."""
