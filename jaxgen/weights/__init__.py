"""Safe weight import/export (see the submodules)."""
