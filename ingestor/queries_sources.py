"""The SQL behind sources and their ingest route, as static constants.

Each query starts with its purpose and what each $n is. Every API statement is scoped
by organization, so another organization's source is simply not found.
"""

# What the API shows of a source (never its secrets: only how many are valid).
SOURCE_COLUMNS = """
id, name, kind, token, settings::text AS settings, tolerance_s,
cardinality(secrets) AS secret_count, created_at, updated_at
"""

# Creates a source. $1 id, $2 organization id, $3 name, $4 kind, $5 token, $6 its first
# secret, $7 settings (JSON text) or NULL, $8 tolerance in seconds.
INSERT_SOURCE = """
INSERT INTO sources (id, org_id, name, kind, token, secrets, settings, tolerance_s)
VALUES ($1, $2, $3, $4, $5, ARRAY[$6::text], $7::jsonb, $8)
RETURNING """ + SOURCE_COLUMNS

# An organization's sources, oldest first. $1 organization id.
LIST_SOURCES = "SELECT " + SOURCE_COLUMNS + """
FROM sources WHERE org_id = $1 ORDER BY created_at, id
"""

# One source. $1 source id, $2 organization id.
SOURCE_BY_ID = "SELECT " + SOURCE_COLUMNS + """
FROM sources WHERE id = $1 AND org_id = $2
"""

# Changes the fields named in $3, keeps the others. $1 source id, $2 organization id,
# $3 names of the fields given, $4 name, $5 tolerance in seconds.
UPDATE_SOURCE = """
UPDATE sources SET
    name = CASE WHEN 'name' = ANY($3::text[]) THEN $4::text ELSE name END,
    tolerance_s = CASE WHEN 'tolerance_s' = ANY($3::text[]) THEN $5::integer
                       ELSE tolerance_s END,
    updated_at = now()
WHERE id = $1 AND org_id = $2
RETURNING """ + SOURCE_COLUMNS

# Deletes a source and its rejections; its events stay. $1 source id, $2 organization id.
DELETE_SOURCE = "DELETE FROM sources WHERE id = $1 AND org_id = $2 RETURNING id, token"

# A rotation: the new secret first, the previous current one kept valid beside it (the
# one before is dropped). $1 source id, $2 organization id, $3 the new secret.
ROTATE_SECRET = """
UPDATE sources SET secrets = ARRAY[$3::text] || secrets[1:1], updated_at = now()
WHERE id = $1 AND org_id = $2
RETURNING """ + SOURCE_COLUMNS

# The kind and settings of one source, to check a secret given for it.
# $1 source id, $2 organization id.
SOURCE_KIND = "SELECT kind, settings::text AS settings FROM sources WHERE id = $1 AND org_id = $2"

# What the ingest route needs of the source behind a token, with its organization's tier
# (the organization's rate limit applies). $1 the token.
SOURCE_BY_TOKEN = """
SELECT s.id, s.org_id, o.tier, s.kind, s.secrets, s.settings::text AS settings, s.tolerance_s
FROM sources s JOIN organizations o ON o.id = s.org_id
WHERE s.token = $1
"""

# Records a refused request and drops the source's rejections beyond the newest $5 (the
# delete sees the snapshot from before the insert, hence the `- 1`).
# $1 source id, $2 reason, $3 message, $4 headers (JSON text), $5 how many to keep.
INSERT_REJECTION = """
WITH added AS (
    INSERT INTO source_rejections (source_id, reason, message, headers)
    VALUES ($1, $2, $3, $4::jsonb)
    RETURNING id
), beyond AS (
    -- the rows that fall out of the kept window once `added` is counted
    SELECT id FROM source_rejections
    WHERE source_id = $1
    ORDER BY id DESC
    OFFSET $5::integer - 1
)
DELETE FROM source_rejections WHERE id IN (SELECT id FROM beyond)
"""

# The latest rejections of one of the organization's sources, newest first.
# $1 source id, $2 organization id, $3 how many.
REJECTIONS = """
SELECT r.at, r.reason, r.message, r.headers::text AS headers
FROM source_rejections r JOIN sources s ON s.id = r.source_id
WHERE r.source_id = $1 AND s.org_id = $2
ORDER BY r.id DESC
LIMIT $3
"""
