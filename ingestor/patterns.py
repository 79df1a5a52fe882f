"""The text rules that both the validation and the OpenAPI document state, written once.

Each is a regular expression that reads the same in Python's `re` and in ECMA-262, the
dialect of JSON Schema's `pattern`: anchored with ^ and $, and without the \\s, \\S, \\d or
\\w shorthands, whose meaning differs between the two (and between validators). The
validation calls `matches`, the document carries the same text, so a value the document
admits is one the handler accepts.
"""

from __future__ import annotations

import functools
import re

# What Python calls whitespace (str.isspace), spelled out.
SPACE = (r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
         r"\u3000")

# Any text without NUL (PostgreSQL cannot store one); TEXT has at least one character.
NO_NUL = r"^[^\x00]*$"
TEXT = r"^[^\x00]+$"
# The same, holding something other than whitespace: an event type, a dedup id.
NAME = rf"^[^\x00]*[^\x00{SPACE}][^\x00]*$"
# An endpoint's event type filter: `*` (every type), an exact type, or `prefix.*`;
# neither whitespace nor NUL, and `*` nowhere else.
EVENT_FILTER = rf"^(?:\*|[^\x00*{SPACE}]+(?:\.\*)?)$"
# An http or https URL's scheme and the start of its host (the rest: format uri).
HTTP_URL = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\x00-\x20\x7f]"
# An HTTP header name (an RFC 9110 token) and a value an endpoint may send: visible
# ASCII, spaces and tabs inside, none at either end.
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$"
HEADER_VALUE = r"^[\x21-\x7e](?:[\x20-\x7e\t]{0,1022}[\x21-\x7e])?$"
# A time the API reads: RFC 3339 (`T` or a space between date and time, fraction and
# offset optional: without one, UTC), with a year from 1970 to 9998 as written.
YEAR = r"(?:19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
TIME = (rf"^{YEAR}-[0-9]{{2}}-[0-9]{{2}}[Tt ][0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}"
        r"(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?$")
# A decimal integer as a query or path parameter carries it.
INTEGER = r"^-?[0-9]+$"
# A canonical UUID, as the API writes them.
UUID = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def matches(pattern: str, value: str) -> bool:
    """Whether the whole of `value` matches `pattern` (one of the above)."""
    return _compiled(pattern).fullmatch(value) is not None
