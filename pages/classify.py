"""Classify page (logic in app/ui/classify_page.py)."""

from app.ui.classify_page import render

render()
