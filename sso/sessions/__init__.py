"""The SSO session: who, when and how a browser signed in."""
