"""Compare page (logic in app/ui/compare_page.py)."""

from app.ui.compare_page import render

render()
