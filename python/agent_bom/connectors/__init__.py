"""Delivery connectors: one module each."""
