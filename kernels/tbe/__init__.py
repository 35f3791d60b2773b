"""Ascend 910 custom operators of the EDVR sampling ops, laid out as a CANN custom operator project.

tbe/impl: plans (pure Python), the kernel program and its TIK back end; op_proto, framework/tf_plugin,
tbe/op_info_cfg: graph-engine, TensorFlow-parser and op-info sides; golden.py: device test data.
"""
