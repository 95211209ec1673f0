"""The page: the left column (sidebar), the guided tour, and one module per tab under `ui/tabs/`.

`app.py` composes them. Each tab's `build(shared)` lays out its tab inside the page's gr.Tabs, wires its
events and holds its callbacks; `shared` (ui.shared.Shared) carries what every tab reads.
"""
