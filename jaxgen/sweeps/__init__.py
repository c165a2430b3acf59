"""Hyper-parameter sweeps: sweep files (``experiments/*.py``), trial naming, the runner with local and Ray
backends, Optuna search, the results table and the HTML report. Entry points: ``jaxgen sweep`` and
``jaxgen report`` (``jaxgen.commands.sweep`` / ``jaxgen.commands.report``)."""

from jaxgen.sweeps.spec import choice, int_uniform, log_uniform, product, random_search, sweep, uniform, zip

__all__ = ["choice", "int_uniform", "log_uniform", "product", "random_search", "sweep", "uniform", "zip"]
