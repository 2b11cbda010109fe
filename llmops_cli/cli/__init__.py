"""The command-line layer: thin typer commands that parse, call the core, and render with rich."""
