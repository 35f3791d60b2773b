"""EDVR video super-resolution in TF1-style graph code (model, data, training, evaluation)."""

# The one upscaling factor: the model outputs x4 its input and a dataset's GT frames are x4
# its LR frames (REDS' sharp_bicubic). edvr.data.reds, edvr.model and the training graph use it.
SCALE = 4
