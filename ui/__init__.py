"""App-side helpers: cached resources and shared widgets. Only the app imports this."""
