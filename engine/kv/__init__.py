"""The sequence's state: window ring, compressed pages, prefix cache, KV on disk."""
