"""Message templates: the built-in ones (package data), a page's overrides, and their rendering."""
