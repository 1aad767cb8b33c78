"""Token service: signs Zoom Cobrowse JWTs; agent tokens only for authenticated agents (see ``docs/token.md``)."""

__version__ = "0.1.0"
