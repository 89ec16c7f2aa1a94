"""Built-in components; importing this package registers them."""
