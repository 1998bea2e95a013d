"""The language server: LSP handlers, settings and logging (protocol only)."""
