"""Repository tools: plain functions with typed (pydantic) inputs and outputs, usable without the
agent or the TUI. A tool never asks the user anything; it returns a result or raises a typed
error whose text tells the model how to do better."""
