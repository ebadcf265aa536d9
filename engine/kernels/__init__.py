"""Triton kernels, one file per op, each with its plain-PyTorch `_ref` twin; see registry."""
