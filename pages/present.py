"""Present page (logic in app/ui/present_page.py)."""

from app.ui.present_page import render

render()
