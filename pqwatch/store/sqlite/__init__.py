"""The SQLite side of the store: FTS5 full-text index and queries, bm25, facet words, the query
compiler, matching. A PostgreSQL package would sit beside it with the same functions."""
