"""V4's building blocks. Each op the model calls is a small pure function here, so a later
kernel registry can swap it for a Triton kernel with the same signature."""
