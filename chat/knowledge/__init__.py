"""The user's documents ("My documents"): uploaded files as text in chunks, searched for the
user's runs. Models and their queries (every one filtered to what the user may see inside its SQL),
text extraction with its limits, chunking and the lexical search; sync, called from async code
through chat.storage.executor.run_db. Processing in the background, embeddings and the hybrid
search are the run service's (chat.runs.knowledge)."""
