"""Show text that comes from users and files safely in Streamlit's Markdown."""

from __future__ import annotations

import re

# Characters Markdown (and Streamlit's `$…$` LaTeX and `:color[…]` directives) would interpret.
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#$~|:])")


def escape_markdown(text: object) -> str:
    """``text`` with Markdown syntax escaped, so it renders literally in ``st.markdown``, ``st.error``, ..."""
    return _SPECIAL.sub(r"\\\1", str(text))
