"""ig gadget trace open."""
