"""Activity feed and, later, user journeys and usage analytics."""
