"""ig gadget trace oomkill."""
