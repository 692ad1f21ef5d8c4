"""ig gadget trace dns."""
