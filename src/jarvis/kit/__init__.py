"""Small helpers shared by every domain; imports no domain module."""
