"""The DisCo engine: token, sampling, optimisation loop, run folder, evaluation."""
