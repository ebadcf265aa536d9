"""Exit codes shared by every `flashcode` command, so scripts can act on them.

They are documented in `flashcode --help` and in README.md; change them together.
"""

OK = 0  # done (for `fix`: fixed and verified)
NOT_FIXED = 1  # the work ran but did not succeed (for `fix`: not fixed), or a runtime error
USAGE = 2  # bad command line or bad configuration
NEEDS_APPROVAL = 3  # an action needed approval that was not given (headless runs)
BACKEND_UNAVAILABLE = 4  # no usable model: no weights, endpoint unreachable, auth failed

DESCRIPTIONS = {
    OK: "success (fix: fixed and verified)",
    NOT_FIXED: "the task was not done (fix: not fixed) or a runtime error",
    USAGE: "usage error: bad arguments or bad configuration",
    NEEDS_APPROVAL: "an action needed approval that was not given",
    BACKEND_UNAVAILABLE: "no usable model backend (weights, endpoint, auth)",
}


def epilog() -> str:
    """The exit-code table as help text."""
    rows = "\n".join(f"  {code}  {text}" for code, text in DESCRIPTIONS.items())
    return f"exit codes:\n{rows}"
