"""ig gadget trace tcp."""
