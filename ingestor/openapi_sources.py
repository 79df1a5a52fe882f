"""The OpenAPI description of sources: the /api/sources operations, the ingest route
POST /in/{token}, and their component schemas. `openapi.document()` merges them in."""

from __future__ import annotations

from typing import Any

from ingestor.openapi import links_to, operation, path_param, reply
from ingestor.openapi_schemas import (
    NAME,
)
from ingestor.routes_inbound import TOKEN
from ingestor.routes_sources import MAX_BODY
from ingestor.shapes import (
    TIME,
    UUID,
    Schema,
    array,
    boolean,
    const,
    enum,
    integer,
    nullable,
    obj,
    ref,
    string,
)
from ingestor.source_input import (
    HEADER,
    MAX_SECRET,
    MAX_SETTING,
    MAX_TOLERANCE_S,
    PATH,
    SECRET,
    TEMPLATE,
)
from ingestor.source_kinds import KINDS
from ingestor.source_schemes import ALGORITHMS, DIGEST_ENCODINGS, KEY_ENCODINGS, SEPARATORS
from ingestor.validation import MAX_EVENT_BODY

SOURCE_ID = path_param("source_id", UUID)
_TO_SOURCE = links_to("source_id", "$response.body#/id", "get_source", "patch_source",
                      "delete_source", "rotate_source_secret", "source_rejections")


def _place(name: str, kinds: tuple[str, ...], description: str) -> Schema:
    shapes = {"header": HEADER, "part": r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", "path": PATH}
    return nullable({"oneOf": [obj({kind: string(minLength=1, maxLength=MAX_SETTING,
                                                 pattern=shapes[kind])}, closed=True)
                               for kind in kinds], "description": description})


def _settings() -> Schema:
    text = string(minLength=1, maxLength=MAX_SETTING)
    return obj({}, {
        "header": {**text, "pattern": HEADER, "description": "The signature header (hmac: "
                                                             "required)."},
        "prefix": string(maxLength=50, pattern=r"^[!-~]*$",
                         description="Each signature starts with it (`sha256=`, `v1=`)."),
        "separator": nullable(enum(SEPARATORS, description="The header holds parts split "
                                                           "by this.")),
        "algorithm": nullable(enum(ALGORITHMS, description="Default sha256.")),
        "key_encoding": nullable(enum(KEY_ENCODINGS, description="How the secret becomes the "
                                                                 "key; default raw.")),
        "digest_encoding": nullable(enum(DIGEST_ENCODINGS, description="Default hex.")),
        "template": nullable({**text, "pattern": TEMPLATE, "description": "The signed string "
                              "over {body}, {timestamp}, {id}; default {body}. It uses "
                              "{timestamp} (or {id}) exactly when `timestamp` (or "
                              "`signed_id`) is given (400 otherwise)."}),
        "timestamp": _place("timestamp", ("header", "part"), "Where the signed Unix time "
                            "is: a header, or a `name=value` part of the signature header."),
        "signed_id": _place("signed_id", ("header", "part"), "Where the signed id is."),
        "two_sided": boolean(description="Also refuse timestamps that far ahead."),
        "type_from": _place("type_from", ("header", "path"), "Where the event type is: a "
                            "header or a dotted path in the body."),
        "id_from": _place("id_from", ("header", "path"), "Where the provider's event id "
                          "(deduplication) is."),
        "fixed_type": nullable({**NAME, "description": "The type when none is found "
                                                       "(default `webhook`)."}),
    }, closed=True, description="For the hmac kind (required, with `header`) and the none "
                                "kind (type_from, id_from, fixed_type only); 400 for others.")


def source_schemas() -> dict[str, Schema]:
    secret = string(minLength=1, maxLength=MAX_SECRET, pattern=SECRET,
                    description="The provider's secret; made when absent. standard-webhooks "
                                "(and hmac with key_encoding whsec or base64): base64 (400 "
                                "otherwise).")
    tolerance = integer(minimum=1, maximum=MAX_TOLERANCE_S,
                        description="Signature timestamp tolerance in seconds (default 300).")
    source = {"id": UUID, "name": string(), "kind": enum(KINDS),
              "settings": nullable(ref("SourceSettings")), "tolerance_s": integer(),
              "secret_count": integer(minimum=1, description="Secrets valid now."),
              "ingest_path": string(pattern=r"^/in/src_"),
              "ingest_url": string(description="The URL to give the provider (this node's "
                                               "host as the request named it)."),
              "created_at": TIME, "updated_at": TIME}
    shown = string(description="Shown at creation and rotation only.")
    return {
        "SourceSettings": _settings(),
        "SourceIn": obj({"name": NAME, "kind": enum(KINDS)}, {
            "settings": nullable(ref("SourceSettings")), "tolerance_s": nullable(tolerance),
            "secret": nullable(secret)}, closed=True),
        "SourcePatch": obj({}, {"name": NAME, "tolerance_s": tolerance}, closed=True,
                           minProperties=1),
        "SourceSecretIn": obj({}, {"secret": nullable(secret)}, closed=True,
                              description="Empty: a secret is made. The previous secret "
                                          "stays valid until the next rotation."),
        "Source": obj(source),
        "SourceWithSecret": obj({**source, "secret": shown}),
        "Sources": obj({"sources": array(ref("Source"))}),
        "SourceDeleted": obj({"id": UUID, "deleted": const(True)}),
        "Rejections": obj({"rejections": array(obj({
            "at": TIME, "reason": string(), "message": string(),
            "headers": {"type": "object", "additionalProperties": string()}}))}),
        "ProviderBody": {"type": "object", "description": "The provider's JSON body, "
                         f"verified over its exact bytes (at most {MAX_EVENT_BODY})."},
        "Received": obj({"id": UUID, "status": enum(("accepted", "duplicate"))}),
        "Challenge": obj({"challenge": {"description": "Slack's url_verification "
                                                       "challenge, echoed."}}),
    }


def source_paths() -> dict[str, Schema]:
    def one(op_id: str, summary: str, schema: str, **extra: Any) -> Schema:
        return operation(op_id, "sources", summary, {"200": reply("The source.", ref(schema))},
                         errors=("400", "404"), params=(SOURCE_ID,), **extra)
    token = path_param("token", string(pattern=TOKEN))
    return {
        "/api/sources": {
            "post": operation("create_source", "sources", "Create a source of a provider's "
                              "webhooks; 403 for the none kind unless the node allows it.",
                              {"201": reply("Created, with its secret.",
                                            ref("SourceWithSecret"), links=_TO_SOURCE),
                               "403": reply("The none kind, on a node that does not allow it.",
                                            ref("Error"))},
                              body="SourceIn", max_bytes=MAX_BODY),
            "get": operation("list_sources", "sources", "The organization's sources, oldest "
                             "first.", {"200": reply("All of them.", ref("Sources"))})},
        "/api/sources/{source_id}": {
            "get": one("get_source", "One source.", "Source"),
            "patch": one("patch_source", "Rename a source or change its tolerance.", "Source",
                         body="SourcePatch", max_bytes=MAX_BODY),
            "delete": one("delete_source", "Delete a source (its events stay).",
                          "SourceDeleted")},
        "/api/sources/{source_id}/rotate-secret": {"post": one(
            "rotate_source_secret", "A new secret (given, or made); the previous one stays "
            "valid beside it until the next rotation.", "SourceWithSecret",
            body="SourceSecretIn", max_bytes=MAX_BODY)},
        "/api/sources/{source_id}/rejections": {"get": one(
            "source_rejections", "The source's latest refused requests, newest first.",
            "Rejections")},
        "/in/{token}": {"post": operation(
            "receive", "sources", "A provider's webhook: verified over the exact bytes "
            "(401 with the reason), committed as an event, then answered; a repeated "
            "provider id is a 200 duplicate. No API key: the token and the signature.",
            {"200": reply("Committed (or a duplicate), or Slack's challenge.",
                          {"oneOf": [ref("Received"), ref("Challenge")]}),
             "401": reply("Signature missing, wrong, or its timestamp out of tolerance.",
                          ref("Error"))},
            errors=("404", "429", "503"), params=(token,), body="ProviderBody",
            max_bytes=MAX_EVENT_BODY, access="none")},
    }

