"""Users, passwords and roles per app."""
