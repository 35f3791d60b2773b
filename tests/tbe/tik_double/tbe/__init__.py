"""Test double of CANN's `tbe` package: only `tbe.tik` (see tbe/tik.py). Not CANN."""
