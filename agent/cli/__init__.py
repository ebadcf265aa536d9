"""The `flashcode` command line: `main` parses and dispatches; one module per command runs it.

Importing this package, or `agent.cli.main`, imports only the standard library, so
`flashcode --help` starts fast; each command imports what it needs when it runs.
"""
