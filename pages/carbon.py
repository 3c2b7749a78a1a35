"""Carbon page (logic in app/ui/carbon_page.py)."""

from app.ui.carbon_page import render

render()
