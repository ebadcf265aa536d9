"""The V4 chat format: messages, rendering, reply parsing, DSML, grammar, tokenizer."""
