"""EDVR video super-resolution in TF1-style graph code (model, data, training, evaluation)."""
