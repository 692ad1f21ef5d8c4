"""Test-only gadget plugin that misbehaves on request, installed like a third-party one."""
