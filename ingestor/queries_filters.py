"""The SQL behind payload filters (ingestor/filters.py), as static constants.

Each query starts with its purpose and what each $n is.
"""

# Explains a filter on one subject: PostgreSQL's verdict on the whole filter, then for
# each condition (in order) its own verdict, whether its field is present and the first
# value found there (jsonb as text, NULL when absent). Each is evaluated as routing does
# (workers/queries.py ROUTE_EVENTS): the subject's data as the root, the rest of it (type,
# headers) as the variables, silently (a path that cannot apply is no match). The
# parameters are text cast to jsonb and jsonpath here, so a connection's own type codecs
# cannot change them.
# $1 the subject (JSON text), $2 the filter's jsonpath, $3 each condition's predicate,
# $4 each condition's field path (pairwise with $3).
EXPLAIN = """
WITH subject AS (
    SELECT s -> 'data' AS data, s - 'data' AS vars FROM (SELECT $1::text::jsonb AS s) AS given
)
SELECT coalesce(jsonb_path_match(data, $2::text::jsonpath, vars, true), false) AS matches,
       array_agg(coalesce(jsonb_path_match(data, leaf.predicate::jsonpath, vars, true), false)
                 ORDER BY leaf.n) AS matched,
       array_agg(jsonb_path_exists(data, leaf.field::jsonpath, vars, true)
                 ORDER BY leaf.n) AS present,
       array_agg(jsonb_path_query_first(data, leaf.field::jsonpath, vars, true)::text
                 ORDER BY leaf.n) AS actual
FROM subject, unnest($3::text[], $4::text[]) WITH ORDINALITY AS leaf (predicate, field, n)
GROUP BY data, vars, $2
"""

# How routing matches a filter, for tests and tools that evaluate one as it does.
# $1 the subject (JSON text), $2 a compiled filter path.
MATCH = """
SELECT coalesce(jsonb_path_match(s -> 'data', $2::text::jsonpath, s - 'data', true), false)
FROM (SELECT $1::text::jsonb AS s) AS given
"""
