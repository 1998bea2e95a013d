"""A character-level tokenizer: prompt budgets can be checked without a model."""

SPECIALS = {
    name: 1_000_000 + i
    for i, name in enumerate(
        ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|repo_name|>", "<|file_sep|>"]
    )
}


class CharTokenizer:
    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def token_id(self, special: str) -> int:
        return SPECIALS[special]

    def decode(self, ids: list[int]) -> str:
        names = {v: k for k, v in SPECIALS.items()}
        return "".join(names.get(i, chr(i)) if i >= 1_000_000 else chr(i) for i in ids)
