"""Explore page (logic in app/ui/explore_page.py)."""

from app.ui.explore_page import render

render()
