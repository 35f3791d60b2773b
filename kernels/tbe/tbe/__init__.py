"""TBE part of the CANN custom operator project (impl: kernels, op_info_cfg: op info)."""
