"""OFA Explorer — entry point: ``streamlit run streamlit_app.py [-- --supernet PATH]``."""

import streamlit as st

from app.allocator import keep_freed_memory

keep_freed_memory()  # a no-op under `make run` (app.ui.serve applies it before any thread starts)

from app.ui.layout import PAGES, sidebar

st.set_page_config(page_title="OFA Explorer", page_icon=":material/hub:", layout="wide")
page = st.navigation([st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url, default=p.default) for p in PAGES])
sidebar()
page.run()
