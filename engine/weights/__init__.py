"""The checkpoint: loader, tensor names, tiny checkpoints, placement, memory plans."""
