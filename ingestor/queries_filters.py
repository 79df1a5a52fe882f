"""The SQL behind payload filters (ingestor/filters.py), as static constants.

Each query starts with its purpose and what each $n is.
"""

# Explains a filter on one subject: PostgreSQL's verdict on the whole filter, then for
# each condition (in order) its own verdict, whether its field is present and the first
# value found there (jsonb as text, NULL when absent). The parameters are text cast to
# jsonb and jsonpath here, so a connection's own type codecs cannot change them.
# $1 the subject (JSON text), $2 the filter's jsonpath, $3 each condition's predicate,
# $4 each condition's field path (pairwise with $3).
EXPLAIN = """
SELECT $1::text::jsonb @@ $2::text::jsonpath AS matches,
       array_agg($1::text::jsonb @@ leaf.predicate::jsonpath ORDER BY leaf.n) AS matched,
       array_agg(jsonb_path_exists($1::text::jsonb, leaf.field::jsonpath)
                 ORDER BY leaf.n) AS present,
       array_agg(jsonb_path_query_first($1::text::jsonb, leaf.field::jsonpath)::text
                 ORDER BY leaf.n) AS actual
FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS leaf (predicate, field, n)
"""
