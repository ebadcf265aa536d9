"""The Textual app: app.py wires widgets/ and screens/; all styling lives in app.tcss.

Attributes go down (the app sets widget state), messages come up (widgets and the agent's
worker thread post messages; nothing off the UI thread touches a widget).
"""
