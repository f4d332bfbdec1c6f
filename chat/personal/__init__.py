"""What Cirkelline knows about each user: their profile (name, timezone, custom instructions, the
memory switch) and their memories. Models and their queries, always scoped to one owner; sync (the
ORM), called from async code through chat.storage.executor.run_db."""
