"""Paper-trading validation (checklist §8): a full day with a verdict."""
