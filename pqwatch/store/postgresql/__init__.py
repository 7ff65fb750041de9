"""The PostgreSQL side of the store: tsvector full-text search (ts_rank, ts_headline), the query
compiler, matching, the ingest index writes and leases. Beside pqwatch.store.sqlite, with the
same functions."""
