"""Modal screens: approvals, the task spec, sessions."""
