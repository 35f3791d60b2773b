"""Data for EDVR: the seed's REDS layout (reader, check, regroup, download), a synthetic
offline dataset, and the tf.data input pipelines for training and validation."""
