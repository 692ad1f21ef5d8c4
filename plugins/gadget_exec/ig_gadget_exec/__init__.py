"""ig gadget trace exec."""
