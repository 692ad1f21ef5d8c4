"""Test-only gadget plugin, installed like a third-party one, to drive ig's core end to end."""
