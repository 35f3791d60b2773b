"""Training pieces for ``edvr.train``: lr schedule, losses, optimiser groups, checkpoints,
options checking and the DCN offset monitor."""
