"""Infrastructure and contracts shared by the cobrowse-desk services (no business logic)."""
