"""Launch the app: ``python -m app.ui.serve [streamlit options] [-- --supernet PATH]``.

Same as ``streamlit run streamlit_app.py``, except that Streamlit's legacy handling of
a ``pages/`` folder beside the entry script is switched off before the server starts:
the app declares its pages with ``st.navigation`` (titles, icons, URLs), and without
this the very first session after start-up would be routed the legacy way.
It also runs from the project root, so ``.streamlit/config.toml`` (a link to
``streamlit_config.toml``) always takes effect.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> None:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False
    os.chdir(ROOT)
    args = list(sys.argv[1:] if argv is None else argv)
    sys.argv = ["streamlit", "run", str(ROOT / "streamlit_app.py"), *args]
    cli.main()


if __name__ == "__main__":
    main()
