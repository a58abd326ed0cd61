"""Users, their roles in each app: the data the session, flow and method layers read."""
