"""Start the Streamlit server with app.py's ``st.navigation`` as the only page registry.

Streamlit treats a ``pages/`` folder beside the main script as a version-1
multipage app until ``st.navigation`` has run once in the server process, so
the first visitor who opens a bookmarked ``/data`` after a restart would get
that page outside the app shell. Streamlit clears the class flag
``PagesManager.uses_pages_directory`` itself on the first ``st.navigation``
call; we clear it before the server starts. ``loupe run`` starts the app
through this module: ``python -m ui.serve run app.py [streamlit options]``.
"""

from __future__ import annotations

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli


def main() -> None:
    PagesManager.uses_pages_directory = False
    cli.main()  # a click command: reads sys.argv and exits


if __name__ == "__main__":
    main()
