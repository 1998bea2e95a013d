"""The Repoformer training pipeline: self-supervised labels, a learned retrieve token."""
