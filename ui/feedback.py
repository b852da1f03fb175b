"""Messages that survive the rerun after an action (UI state only)."""

from __future__ import annotations

from typing import Literal

import streamlit as st

from core.errors import LoupeError
from ui.text import escape_markdown

_FLASH_KEY = "feedback.flash"
Kind = Literal["success", "info", "warning"]


def flash(message: str, *, kind: Kind = "success") -> None:
    """Keep a message for the next run; call ``st.rerun()`` after it so the page shows fresh data."""
    st.session_state[_FLASH_KEY] = (kind, message)


def show_flash() -> None:
    """Show (once) the message an action left before its rerun."""
    pending = st.session_state.pop(_FLASH_KEY, None)
    if pending is None:
        return
    kind, message = pending
    show = {"success": st.success, "info": st.info, "warning": st.warning}[kind]
    show(escape_markdown(message))


def show_error(error: LoupeError) -> None:
    """Show a core error's message as the user should read it (file names, quotes and all)."""
    st.error(escape_markdown(str(error)), icon=":material/error:")
