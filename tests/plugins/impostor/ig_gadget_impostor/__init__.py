"""Test-only third-party plugin that misbehaves at registration, when IG_TEST_IMPOSTOR asks it to."""
