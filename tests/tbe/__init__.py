"""Ascend 910 path: TBE kernel plans, consistency, golden data, NPU training set-up."""
