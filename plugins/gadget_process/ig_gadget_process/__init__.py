"""ig gadget snapshot process."""
