"""OFA Explorer — entry point: ``streamlit run streamlit_app.py [-- --supernet PATH]``."""

import streamlit as st

from app.allocator import keep_freed_memory

keep_freed_memory()  # a no-op under `make run` (app.ui.serve applies it before any thread starts)

from app.ui.layout import PAGES, sidebar

st.set_page_config(page_title="OFA Explorer", page_icon=":material/hub:", layout="wide")
# Every page has its own URL (/explore, /classify, ...). The app's root shows Explore through a separate default page:
# Streamlit serves its default page only at the root, so without it a link to /explore would say "Page not found".
pages = {p.url: st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url) for p in PAGES}
home = st.Page(PAGES[0].path, title=PAGES[0].title, icon=PAGES[0].icon, url_path="home", default=True)
page = st.navigation([home, *pages.values()], position="hidden")  # the sidebar lists the pages once (not Join)
sidebar(pages)
page.run()
