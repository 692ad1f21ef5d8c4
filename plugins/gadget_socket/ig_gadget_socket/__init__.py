"""ig gadget snapshot socket."""
