"""The only user of asyncpg: the pool, SQL migrations, table import/export, and the embedded server."""
