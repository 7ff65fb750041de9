"""The store stage: SQLite tables, migrations and the queries over them."""
