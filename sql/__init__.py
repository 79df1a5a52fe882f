"""The database: numbered migrations (NNN_name.sql, applied by `triggerd migrate`) and
the words every package shares about it (`faults`). Installed as `triggerd_sql`."""
