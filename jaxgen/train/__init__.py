"""Training: state, data parallelism, checkpoints, logging and the generic loop (tasks live in jaxgen.tasks)."""

from jaxgen.train.loop import NonFiniteLossError, train
from jaxgen.train.state import Player, TrainState

__all__ = ["NonFiniteLossError", "Player", "TrainState", "train"]
