"""One module per tab, each with `build(shared: ui.shared.Shared) -> None`; app.py calls them in tab order."""
