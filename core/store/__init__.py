"""The store: SQLModel tables and the functions that read and write them."""

from core.store.engine import get_engine, make_engine, session_scope

__all__ = ["get_engine", "make_engine", "session_scope"]
