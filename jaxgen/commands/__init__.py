"""One module per ``jaxgen`` sub-command; each exposes ``run(argv) -> exit code``."""
