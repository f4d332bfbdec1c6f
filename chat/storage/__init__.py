"""The database side of runs: the executor every ORM call of the run path goes through, the agno
storage adapter, the run's session claim and buffered writes, and the final write's prepared SQL."""
