"""flashcode's agent: the loop, sessions, context, backends, approvals, the TUI and the CLI.

The agent core sees a model only through the `LanguageModel` protocol and never imports torch;
`agent.cli` is the one place that wires the in-process engine in, lazily.
"""
