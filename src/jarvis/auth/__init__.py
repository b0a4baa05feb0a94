"""Users, profiles, preferences, sessions and API tokens; sign-in and guards."""
