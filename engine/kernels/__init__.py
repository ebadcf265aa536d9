"""Triton kernels, one file per op, each with its plain-PyTorch `_ref` twin (see registry), and
rope, the positional math the attention kernels and the layers share."""
