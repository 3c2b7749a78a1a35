"""The app's page list and the sidebar shared by every page."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    url: str
    hidden: bool = False  # reachable by its URL only (not listed in the sidebar)


PAGES = (
    PageSpec("pages/explore.py", "Explore", ":material/tune:", "explore"),  # also the app's root page
    PageSpec("pages/classify.py", "Classify", ":material/image_search:", "classify"),
    PageSpec("pages/specialise.py", "Specialise", ":material/target:", "specialise"),
    PageSpec("pages/compare.py", "Compare", ":material/push_pin:", "compare"),
    PageSpec("pages/carbon.py", "Carbon", ":material/eco:", "carbon"),
    PageSpec("pages/about.py", "Model card", ":material/description:", "about"),
    PageSpec("pages/present.py", "Present", ":material/co_present:", "present"),
    PageSpec("pages/join.py", "Join a room", ":material/qr_code_scanner:", "join", hidden=True),  # the QR code's link
)


def sidebar(pages: dict | None = None) -> None:
    """The page links (``pages``: url -> ``st.Page``), the supernet's identity (and a loud warning for placeholder
    weights) on every page."""
    from app.ui import resources

    net = resources.supernet()
    with st.sidebar:
        if pages:
            for spec in PAGES:
                if spec.hidden:
                    continue
                st.page_link(pages[spec.url], label=spec.title, icon=spec.icon)
            st.divider()
        st.markdown("### OFA Explorer")
        st.caption("Once-for-All (Cai et al., ICLR 2020): train one supernet, extract a subnet per device.")
        card = net.card
        st.markdown(f"**Supernet:** `{card.name}`  \n{card.num_classes} classes · width ×{card.width_mult}")
        if card.placeholder:
            st.error("Untrained placeholder weights: predictions and classifications are meaningless until trained weights are bundled.")
