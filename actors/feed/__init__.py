"""The feed: market-data ingestion (backfill, live stream, gap healing). Its core runs from the CLI
today and inside the feed actor's Ray shell once the daemon exists."""
