"""The video tests reuse the model tests' helpers (random checkpoints:
tests/model/model_testing.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'model'))
