"""Ingestion: source parsers → chunker → sharded Arrow corpora."""
