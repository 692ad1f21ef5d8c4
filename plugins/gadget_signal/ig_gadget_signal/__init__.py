"""ig gadget trace signal."""
