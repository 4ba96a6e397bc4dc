"""Study notes from transcripts: the engine protocol, the Anthropic and offline engines, prompts, chunking,
plans, checks, batches, and regeneration of written notes."""
