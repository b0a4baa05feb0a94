"""API tokens: creating, listing and revoking them, and who a token acts as."""
