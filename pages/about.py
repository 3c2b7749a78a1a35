"""About page (logic in app/ui/about_page.py)."""

from app.ui.about_page import render

render()
