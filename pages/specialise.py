"""Specialise page (logic in app/ui/specialise_page.py)."""

from app.ui.specialise_page import render

render()
