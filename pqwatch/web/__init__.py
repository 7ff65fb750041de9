"""`pqwatch serve`: the web app (Starlette, served by uvicorn).

app.py holds the routes and the page rendering over a `Site` (what the facade offers the web:
search, show, feeds, unsubscribe); server.py binds the socket, runs uvicorn and stops it on a
signal. Like the CLI it is a thin layer: it imports plain result types, never the store, and
is handed the facade rather than importing it (tests/test_layout.py).
"""
