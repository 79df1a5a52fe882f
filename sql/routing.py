"""How an endpoint's `event_types` match an event's type, as SQL, written once for the
routing statement (workers) and test-filter (ingestor), which may not import each other.
"""


def type_matches(patterns: str, event_type: str) -> str:
    """A boolean SQL expression: true when the text[] `patterns` is NULL (every type), or
    one of them equals `event_type` or is a `prefix.*` it starts with. Both arguments are
    SQL expressions (a column, a parameter)."""
    return f"""({patterns} IS NULL OR EXISTS (
           SELECT 1 FROM unnest({patterns}) AS pattern
           WHERE pattern = {event_type}
              OR (right(pattern, 2) = '.*' AND starts_with({event_type}, left(pattern, -1)))))"""
