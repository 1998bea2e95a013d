"""What the serving packages share, with no dependency of its own on them: the language
table and the cache folder. `models/`, `retrieval/` and the tools import from here."""
