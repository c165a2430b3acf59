"""Training: state, pure update step, data parallelism, checkpoints, logging and the loop."""

from jaxgen.train.loop import NonFiniteLossError, restore_generator, train
from jaxgen.train.state import TrainState, init_state
from jaxgen.train.step import make_train_step

__all__ = ["NonFiniteLossError", "TrainState", "init_state", "make_train_step", "restore_generator", "train"]
