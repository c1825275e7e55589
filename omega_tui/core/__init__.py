"""The core runtime: a plain asyncio library with no Textual in it (DESIGN §1, §4)."""
