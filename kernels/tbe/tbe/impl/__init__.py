"""TBE (TIK) implementations of the EDVR sampling ops; CANN is imported only when a kernel is built."""
