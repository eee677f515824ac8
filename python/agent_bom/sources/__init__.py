"""Sources: streams agent-bom reads events from into the store (one module each)."""
