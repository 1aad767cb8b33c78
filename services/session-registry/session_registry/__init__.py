"""Session registry: every cobrowse session's state from beacons and Zoom webhooks, timeouts that fire once."""
