"""The app's widgets: transcript, tool panel, diff view, status bar, prompt input."""
