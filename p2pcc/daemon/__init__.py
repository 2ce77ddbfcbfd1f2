"""The trio shell: one serve_* task per concern around the sans-I/O core."""
