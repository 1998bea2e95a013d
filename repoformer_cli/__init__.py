"""The `repoformer-lsp` command line. Its commands print their results on stdout; the
server itself (`lsp_server/`) never does, since there stdout carries the protocol."""
