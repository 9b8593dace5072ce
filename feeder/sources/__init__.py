"""Retrieval: each source module turns a place (a folder, later a site) into bytes and metadata."""
