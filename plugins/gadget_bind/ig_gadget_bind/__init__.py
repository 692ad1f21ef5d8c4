"""ig gadget trace bind."""
