"""Plan model and state machine builders (Python -> ASL JSON)."""
