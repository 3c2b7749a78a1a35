"""Join page, reached by the Present page's QR code (logic in app/ui/join_page.py)."""

from app.ui.join_page import render

render()
