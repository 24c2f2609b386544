//! The OpenAPI 3.1 document of the node's API (data tasks, sign-in, settlement, operator work and
//! the gateway), served at `/v1/openapi.json`. Each operation states who may call it, from the
//! same route table the router is built from; a test checks that every route is documented here
//! and nothing else is.

use caravan_node::earnings::{EPOCHS_PAGE_MAX, EPOCHS_PER_PAGE};
use caravan_node::gateway::usage::MAX_USAGE_DAYS;
use caravan_node::keys::Scope;
use caravan_tasks::label_studio::MAX_TAG_NAME_BYTES;
use serde_json::{Value, json};

use crate::access::{Access, RouteSpec, SESSION_COOKIE};
use crate::gateway::models::DEFAULT_USAGE_DAYS;

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn errors() -> Value {
    let error = json!({ "description": "what was wrong and how to fix it",
        "content": { "application/json": { "schema": reference("Error") } } });
    json!({ "400": error, "403": error, "404": error, "409": error, "422": error, "500": error,
        "503": error })
}

fn operation(summary: &str, request: Option<Value>, status: &str, response: Value) -> Value {
    let mut responses = errors();
    responses[status] = response;
    let mut op = json!({ "summary": summary, "responses": responses });
    if let Some(request) = request {
        op["requestBody"] = request;
    }
    op
}

/// A gateway operation: bearer-key auth, OpenAI's error shape.
fn gateway_operation(
    summary: &str,
    request: Option<Value>,
    status: &str,
    response: Value,
) -> Value {
    let error = json!({ "description": "OpenAI's error shape: what was wrong and how to fix it",
        "content": { "application/json": { "schema": reference("OpenAiError") } } });
    let mut responses = json!({ "400": error, "401": error, "403": error, "404": error,
        "409": error, "429": error, "503": error });
    responses[status] = response;
    let mut op = json!({ "summary": summary, "responses": responses });
    if let Some(request) = request {
        op["requestBody"] = request;
    }
    op
}

fn amount() -> Value {
    json!({ "type": "string", "pattern": "^[0-9]+$",
            "description": "base units of the token, as a decimal string" })
}

fn address() -> Value {
    json!({ "type": "string", "pattern": "^0x[0-9a-fA-F]{40}$",
            "description": "EVM address; mixed case must carry a valid EIP-55 checksum" })
}

fn hash() -> Value {
    json!({ "type": "string", "pattern": "^0x[0-9a-f]{64}$" })
}

fn schemas() -> Value {
    let amount = amount();
    let ppm = json!({ "type": "integer", "minimum": 0, "maximum": 1_000_000,
                      "description": "parts per million (1000000 = 100%)" });
    json!({
        "Error": { "type": "object", "required": ["error"], "properties": { "error": {
            "type": "object", "required": ["code", "message"],
            "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
        "OpenAiError": { "type": "object", "required": ["error"], "properties": { "error": {
            "type": "object", "required": ["message", "type", "param", "code"],
            "properties": { "message": { "type": "string" }, "type": { "type": "string" },
                "param": { "type": ["string", "null"] }, "code": { "type": "string" } } } } },
        "Model": { "type": "object", "required": ["id", "object"], "properties": {
            "id": { "type": "string", "description": "the model's name; its asset id works too" },
            "object": { "const": "model" }, "created": { "type": "integer" }, "owned_by": { "type": "string" },
            "asset": hash(), "kind": { "enum": ["model", "agent"] },
            "price_per_call": amount.clone(), "token": address() } },
        "ApiKey": { "type": "object", "required": ["id", "payer", "scopes"], "properties": {
            "id": { "type": "string" }, "object": { "const": "api_key" }, "payer": address(),
            "scopes": { "type": "array", "items": reference("Scope") },
            "name": { "type": "string" }, "created_ms": { "type": "integer" },
            "expires_ms": { "type": ["integer", "null"] },
            "key": { "type": "string", "description": "the secret, returned once when the key is issued" } } },
        "Scope": { "enum": Scope::ALL.map(Scope::name),
            "description": "what an API key may do: models (list models, read the balance), chat, embeddings, classify, labeling (take and submit work), requesting (post and run projects, spending on budgets), reviewing" },
        "Address": address(),
        "Hash": hash(),
        "Chain": { "type": "object", "required": ["home"],
            "description": "A chain that pays: its name and chain id on this node, and whether it is home. A share with no chain configured here shows only its chain id (or only home).",
            "properties": { "name": { "type": "string" }, "chain_id": { "type": "integer" },
                            "home": { "type": "boolean" } } },
        "LabelSchema": { "oneOf": [
            { "type": "object", "required": ["type", "options"], "properties": {
                "type": { "const": "single_choice" }, "options": { "type": "array", "items": { "type": "string" } } } },
            { "type": "object", "required": ["type", "options", "min_selected", "max_selected"], "properties": {
                "type": { "const": "multiple_choice" }, "options": { "type": "array", "items": { "type": "string" } },
                "min_selected": { "type": "integer" }, "max_selected": { "type": "integer" } } },
            { "type": "object", "required": ["type", "min_chars", "max_chars"], "properties": {
                "type": { "const": "free_text" }, "min_chars": { "type": "integer" }, "max_chars": { "type": "integer" } } },
            { "type": "object", "required": ["type", "min", "max"], "properties": {
                "type": { "const": "rating" }, "min": { "type": "integer" }, "max": { "type": "integer" } } },
            { "type": "object", "required": ["type", "allow_tie"], "properties": {
                "type": { "const": "pairwise" }, "allow_tie": { "type": "boolean" } } },
            { "type": "object", "required": ["type", "labels", "text_field"], "properties": {
                "type": { "const": "spans" }, "labels": { "type": "array", "items": { "type": "string" } },
                "text_field": { "type": "string" } } }
        ] },
        "Answer": { "description": "exactly one key, matching the project's task type", "oneOf": [
            { "type": "object", "required": ["choice"], "properties": { "choice": { "type": "string" } } },
            { "type": "object", "required": ["choices"], "properties": { "choices": { "type": "array", "items": { "type": "string" } } } },
            { "type": "object", "required": ["text"], "properties": { "text": { "type": "string" } } },
            { "type": "object", "required": ["rating"], "properties": { "rating": { "type": "integer" } } },
            { "type": "object", "required": ["preference"], "properties": { "preference": { "enum": ["a", "b", "tie"] } } },
            { "type": "object", "required": ["spans"], "properties": { "spans": { "type": "array", "items": {
                "type": "object", "required": ["start", "end", "label"], "properties": {
                    "start": { "type": "integer" }, "end": { "type": "integer" }, "label": { "type": "string" } } } } } }
        ] },
        "ProjectSpec": { "type": "object", "required": ["title", "instructions", "schema", "overlap", "token",
            "bounty", "budget", "gold_rate", "skill_bar", "gold_grace", "min_seconds_per_item", "daily_cap",
            "deadline_ms", "lease_seconds", "method"],
            "properties": {
                "title": { "type": "string", "maxLength": 200 },
                "instructions": { "type": "string" },
                "schema": reference("LabelSchema"),
                "overlap": { "type": "object", "required": ["min", "max", "confidence"], "properties": {
                    "min": { "type": "integer", "minimum": 1 }, "max": { "type": "integer", "maximum": 100 },
                    "confidence": { "type": "number", "exclusiveMinimum": 0, "maximum": 1 } } },
                "token": address(), "bounty": amount, "budget": amount,
                "gold_rate": ppm, "skill_bar": ppm,
                "exam": { "type": "object", "required": ["questions", "pass_mark"], "properties": {
                    "questions": { "type": "integer", "minimum": 1 }, "pass_mark": ppm } },
                "gold_grace": { "type": "integer" },
                "min_seconds_per_item": { "type": "integer" },
                "daily_cap": { "type": "integer", "minimum": 1 },
                "deadline_ms": { "type": "integer", "description": "ms since the Unix epoch" },
                "lease_seconds": { "type": "integer", "minimum": 1 },
                "order": { "enum": ["import_order", "model_uncertainty"] },
                "method": { "enum": ["mv", "wawa", "ds", "glad"] } } },
        "Assignment": { "type": "object", "properties": {
            "item": hash(), "data": { "type": "object" },
            "suggestions": { "type": "array", "items": { "type": "object", "properties": {
                "model": { "type": "string" }, "answer": reference("Answer"), "score": { "type": "number" } } } },
            "lease_until_ms": { "type": "integer" } } },
        "Receipt": { "type": "object", "properties": { "effects": { "type": "array", "items": {
            "type": "object", "required": ["type"], "properties": {
                "type": { "enum": ["paid", "paused", "exam_passed", "resolved"] } } } } } },
        "Verdict": { "oneOf": [
            { "type": "object", "required": ["decision"], "properties": { "decision": { "const": "accept" } } },
            { "type": "object", "required": ["decision", "answer"], "properties": {
                "decision": { "const": "fix" }, "answer": reference("Answer") } },
            { "type": "object", "required": ["decision"], "properties": { "decision": { "const": "reject" } } }
        ] }
    })
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "required": required, "properties": properties,
            "additionalProperties": false })
}

fn inline(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

/// The document, with each operation's security taken from `routes` (the router's own table).
pub fn document(routes: &[RouteSpec]) -> Value {
    let acting = |role: &str| {
        let mut schema = address();
        schema["description"] = json!(format!(
            "optional and deprecated: the {role} is the signed-in caller; a request naming another account is refused (403)"
        ));
        schema
    };
    let contributor = inline(object(json!({ "contributor": acting("contributor") }), &[]));
    let format = |formats: &str| {
        json!({ "name": "format", "in": "query", "required": true,
                "schema": { "enum": formats.split(',').collect::<Vec<_>>() } })
    };
    let mut paths = json!({});
    let mut add = |method: &str, path: &str, op: Value| {
        paths[path][method] = op;
    };
    add(
        "get",
        "/v1/openapi.json",
        ok_op("This document.", json!({ "type": "object" })),
    );
    add(
        "post",
        "/v1/projects",
        spending(operation(
            "Post a project as the caller; its budget is escrowed from the caller's prepaid balance (402 insufficient_balance says how much more to deposit).",
            Some(inline(object(
                json!({ "requester": acting("requester"), "spec": reference("ProjectSpec") }),
                &["spec"],
            ))),
            "201",
            ok(
                "created",
                object(json!({ "project": hash() }), &["project"]),
            ),
        )),
    );
    add(
        "get",
        "/v1/projects",
        ok_op("Every project with its status.", json!({ "type": "array" })),
    );
    add(
        "get",
        "/v1/projects/{project}",
        ok_op(
            "A project's spec and status: items, resolved, paid, paused, model agreement.",
            json!({ "type": "object" }),
        ),
    );
    let mut import = operation(
        "Import items from JSONL, CSV or Label Studio JSON (the body); gold answers and predictions are validated against the schema.",
        Some(
            json!({ "required": true, "content": { "text/plain": { "schema": { "type": "string" } } } }),
        ),
        "201",
        ok(
            "added",
            object(
                json!({
                    "added": { "type": "integer" },
                    "already_present": { "type": "integer" },
                    "skipped": { "type": "object", "description": "What the file held that was not imported, or what its annotations became: prediction_ids, relations, annotations, annotations_as_gold, annotations_as_pre_labels" },
                    "notes": { "type": "array", "items": { "type": "string" }, "description": "The same, in words, with what to do about it" }
                }),
                &["added", "already_present", "skipped", "notes"],
            ),
        ),
    );
    import["parameters"] = json!([format("jsonl,csv,label_studio"),
        { "name": "requester", "in": "query", "required": false, "schema": acting("requester") },
        { "name": "annotations", "in": "query", "required": false,
          "description": "What a Label Studio file's annotations become: left out (skip), each task's first as its gold answer (gold), or suggestions (pre_labels)",
          "schema": { "type": "string", "enum": ["skip", "gold", "pre_labels"], "default": "skip" } }]);
    add("post", "/v1/projects/{project}/items", import);
    add(
        "post",
        "/v1/projects/{project}/reviewers",
        operation(
            "Let an account review free-text and span work.",
            Some(inline(object(
                json!({ "requester": acting("requester"), "reviewer": address() }),
                &["reviewer"],
            ))),
            "204",
            json!({ "description": "added" }),
        ),
    );
    add(
        "post",
        "/v1/projects/{project}/next",
        operation(
            "The contributor's next item under a lease (exam and check questions look the same as real items).",
            Some(contributor.clone()),
            "200",
            ok("assigned", reference("Assignment")),
        ),
    );
    add(
        "post",
        "/v1/projects/{project}/judgments",
        operation(
            "Submit an answer for the leased item; the receipt lists payments, pauses and resolutions it caused.",
            Some(inline(object(
                json!({ "contributor": acting("contributor"), "item": hash(), "answer": reference("Answer") }),
                &["item", "answer"],
            ))),
            "201",
            ok("recorded", reference("Receipt")),
        ),
    );
    add(
        "post",
        "/v1/projects/{project}/reviews/next",
        operation(
            "The oldest judgment waiting for review that the reviewer did not write (204 when none).",
            Some(inline(object(
                json!({ "reviewer": acting("reviewer") }),
                &[],
            ))),
            "200",
            ok("a judgment to review", json!({ "type": "object" })),
        ),
    );
    add(
        "post",
        "/v1/projects/{project}/reviews",
        operation(
            "Accept, fix or reject a judgment; a rejected item goes back to the pool.",
            Some(inline(object(
                json!({ "reviewer": acting("reviewer"), "judgment": { "type": "integer" }, "verdict": reference("Verdict") }),
                &["judgment", "verdict"],
            ))),
            "200",
            ok("reviewed", reference("Receipt")),
        ),
    );
    add(
        "get",
        "/v1/projects/{project}/contributors/{account}",
        ok_op(
            "A contributor's standing: skill, exam, gold record, accepted work, earnings, and why they are paused. The contributor sees their own; the project's requester everyone's.",
            json!({ "type": "object" }),
        ),
    );
    add(
        "post",
        "/v1/projects/{project}/publish",
        operation(
            "Publish resolved work as a dataset asset: item root, contributor weights by skill.",
            Some(inline(object(
                json!({ "requester": acting("requester"), "name": { "type": "string" },
            "licence": { "type": "object", "description": "{\"type\":\"open_use\"}, {\"type\":\"non_commercial\"} or commercial terms" },
            "curator_share": { "type": "string", "description": "kept by the requester, e.g. \"10%\"" } }),
                &["name", "licence"],
            ))),
            "201",
            ok("published", json!({ "type": "object" })),
        ),
    );
    add(
        "post",
        "/v1/projects/{project}/close",
        operation(
            "Close the project to new work and return the budget no pending judgment or lease can still claim (again later: what became free since).",
            Some(inline(object(
                json!({ "requester": acting("requester") }),
                &[],
            ))),
            "200",
            ok(
                "closed",
                object(
                    json!({ "released": { "type": "string", "description": "base units returned to the requester's entitlement" } }),
                    &["released"],
                ),
            ),
        ),
    );
    let mut export = ok_op(
        "The published rows as JSONL, CSV or Label Studio JSON, streamed; for the project's requester.",
        json!({ "type": "string" }),
    );
    let tag = |name: &str, what: &str| {
        json!({ "name": name, "in": "query", "required": false,
                "description": format!("label_studio only: the `name` of {what} in your Label Studio config; by default the one the project's Label Studio import found, else caravan's own"),
                "schema": { "type": "string", "minLength": 1, "maxLength": MAX_TAG_NAME_BYTES } })
    };
    export["parameters"] = json!([
        format("jsonl,csv,label_studio"),
        tag("from_name", "the tag that answers (`<Choices name=…>`)"),
        tag("to_name", "the tag it labels (`<Text name=…>`)")
    ]);
    add("get", "/v1/projects/{project}/export", export);
    let epoch = json!({ "type": "object", "properties": {
        "epoch": { "type": "integer" }, "root": hash(), "leaves": { "type": "integer" },
        "closed_at_ms": { "type": "integer" }, "event_seq": { "type": "integer" } } });
    let mut list_epochs = ok_op(
        "Closed epochs with their settlement roots, newest first, a page at a time: a `Link` header with `rel=\"next\"` names the next, older page while there is one.",
        json!({ "type": "array", "items": epoch }),
    );
    list_epochs["parameters"] = json!([
        { "name": "before", "in": "query", "required": false,
          "description": "only epochs numbered below this one (the next page's link sets it)",
          "schema": { "type": "integer", "minimum": 0 } },
        { "name": "limit", "in": "query", "required": false,
          "description": format!("how many epochs at most; {EPOCHS_PER_PAGE} when left out"),
          "schema": { "type": "integer", "minimum": 1, "maximum": EPOCHS_PAGE_MAX } },
    ]);
    list_epochs["responses"]["200"]["headers"] = json!({ "Link": {
        "description": "`</v1/epochs?before=N…>; rel=\"next\"` while older epochs remain",
        "schema": { "type": "string" } } });
    add("get", "/v1/epochs", list_epochs);
    add(
        "get",
        "/v1/epochs/{epoch}",
        ok_op("One closed epoch: root, leaf count, when it closed.", epoch),
    );
    add(
        "get",
        "/v1/epochs/{epoch}/proofs/{account}",
        ok_op(
            "An account's leaves in the epoch with their Merkle proofs, per chain that pays it (each chain has its own root): what a wallet submits to that chain's distributor.",
            json!({ "type": "object", "properties": { "epoch": { "type": "integer" }, "account": address(),
            "chains": { "type": "array", "items": { "type": "object", "properties": {
                "home": { "type": "boolean" }, "chain": reference("Chain"), "root": hash(),
                "leaves": { "type": "array", "items": { "type": "object", "properties": {
                    "token": address(), "cumulative": { "type": "string" },
                    "proof": { "type": "array", "items": hash() } } } } } } } } }),
        ),
    );
    add(
        "get",
        "/v1/chains",
        ok_op(
            "The chains this node pays on; the home chain pays everyone who never chose another.",
            json!({ "type": "array", "items": reference("Chain") }),
        ),
    );
    let choice = object(
        json!({ "account": address(), "chain": reference("Chain") }),
        &["account", "chain"],
    );
    add(
        "get",
        "/v1/accounts/{account}/payout-chain",
        ok_op(
            "The chain an account's earnings are paid on from now on.",
            choice.clone(),
        ),
    );
    add(
        "put",
        "/v1/accounts/{account}/payout-chain",
        operation(
            "Choose the chain the account's earnings are paid on from now on (0 for home), as the signed-in account itself. What it earned before stays claimable on the chain that was paying it.",
            Some(inline(object(
                json!({ "chain_id": { "type": "integer", "minimum": 0 } }),
                &["chain_id"],
            ))),
            "200",
            ok("chosen", choice),
        ),
    );
    add(
        "get",
        "/v1/models",
        gateway_operation(
            "The paid models this node serves (OpenAI's list format).",
            None,
            "200",
            ok(
                "ok",
                json!({ "type": "object", "properties": { "object": { "const": "list" },
                "data": { "type": "array", "items": reference("Model") } } }),
            ),
        ),
    );
    add(
        "get",
        "/v1/models/{model}",
        gateway_operation(
            "One model, by name or asset id.",
            None,
            "200",
            ok("ok", reference("Model")),
        ),
    );
    let attestation = json!({ "type": "object", "properties": {
        "model": hash(), "validator": address(), "dataset": hash(), "metric": { "type": "string", "maxLength": 64 },
        "value_micros": { "type": "integer", "description": "the value in millionths (0.9713 is 971300)" },
        "issued_at_ms": { "type": "integer" },
        "signature": { "type": "string", "pattern": "^0x[0-9a-fA-F]{130}$" } } });
    add(
        "post",
        "/v1/models/{model}/attestations",
        gateway_operation(
            "A validator's evaluation of a model, signed with EIP-712 (`eth_signTypedData_v4`): domain {name: \"caravan\", version: \"1\"}, type Attestation(bytes32 model,bytes32 dataset,string metric,uint64 valueMicros,uint64 issuedAtMs). The node recovers the signer and refuses the attestation unless it is the validator named; an accepted one makes the validator a member of the model's validator role. No API key: the signature is the credential.",
            Some(inline(attestation.clone())),
            "201",
            ok("recorded", attestation.clone()),
        ),
    );
    add(
        "get",
        "/v1/models/{model}/attestations",
        gateway_operation(
            "A model's attestations, in the order they were accepted.",
            None,
            "200",
            ok(
                "ok",
                json!({ "type": "object", "properties": { "object": { "const": "list" },
                "data": { "type": "array", "items": attestation } } }),
            ),
        ),
    );
    add(
        "post",
        "/v1/classifications",
        gateway_operation(
            "Classify items with a first-party classifier, charged the model's price per input from the key's payer. Send `Idempotency-Key` to make retries return the first result and charge once. The response carries a usage receipt (`caravan-receipt`, base64 JSON) and the node's EIP-191 signature over it (`caravan-receipt-signature`).",
            Some(inline(object(
                json!({ "model": { "type": "string" },
                        "input": { "oneOf": [{ "type": "object" }, { "type": "array", "items": { "type": "object" } }] } }),
                &["model", "input"],
            ))),
            "200",
            ok(
                "classified and charged",
                json!({ "type": "object", "properties": {
                "id": { "type": "string" }, "object": { "const": "list" }, "model": { "type": "string" },
                "data": { "type": "array", "items": { "type": "object", "properties": {
                    "index": { "type": "integer" }, "label": { "type": "string" },
                    "confidence": { "type": "number" }, "probabilities": { "type": "object" } } } },
                "usage": { "type": "object", "properties": { "inputs": { "type": "integer" },
                    "cost": amount(), "token": address() } } } }),
            ),
        ),
    );
    add(
        "post",
        "/v1/embeddings",
        gateway_operation(
            "OpenAI's embeddings, computed on this node by its sentence encoder (all-MiniLM-L6-v2: 384 numbers of unit length, so a dot product is the cosine similarity). `input` is a string, an array of strings, an array of token ids (the model's own WordPiece ids) or an array of such arrays: 1 to 2048 inputs and at most 300,000 tokens. An input longer than the model reads (256 tokens with [CLS] and [SEP]) is cut, as sentence-transformers cuts it. `encoding_format` `base64` sends the little-endian float32 bytes. Charged the model's price per call plus its price per million tokens read, which `usage.prompt_tokens` reports; the exact cost is held before the model runs. Send `Idempotency-Key` to make retries return the first result and charge once; the receipt headers are those of /v1/classifications.",
            Some(inline(object(
                json!({ "model": { "type": "string" },
                        "input": { "oneOf": [
                            { "type": "string", "minLength": 1 },
                            { "type": "array", "minItems": 1, "maxItems": 2048, "items": { "type": "string", "minLength": 1 } },
                            { "type": "array", "minItems": 1, "items": { "type": "integer", "minimum": 0 } },
                            { "type": "array", "minItems": 1, "maxItems": 2048, "items": { "type": "array", "minItems": 1, "items": { "type": "integer", "minimum": 0 } } }] },
                        "encoding_format": { "enum": ["float", "base64"] },
                        "dimensions": { "type": "integer", "description": "only the model's own size (384) is accepted" },
                        "user": { "type": "string" } }),
                &["model", "input"],
            ))),
            "200",
            ok(
                "embedded and charged",
                json!({ "type": "object", "properties": {
                "id": { "type": "string" }, "object": { "const": "list" }, "model": { "type": "string" },
                "data": { "type": "array", "items": { "type": "object", "properties": {
                    "object": { "const": "embedding" }, "index": { "type": "integer" },
                    "embedding": { "oneOf": [{ "type": "array", "items": { "type": "number" } }, { "type": "string", "contentEncoding": "base64" }] } } } },
                "usage": { "type": "object", "properties": { "prompt_tokens": { "type": "integer" },
                    "total_tokens": { "type": "integer" } } } } }),
            ),
        ),
    );
    add(
        "post",
        "/v1/chat/completions",
        gateway_operation(
            "OpenAI's chat completions, forwarded to the model's upstream server, with `stream` (server-sent events) and `stream_options.include_usage`. Charged the model's price per call plus its prices per prompt and completion token, from the upstream's usage (always metered, whether or not the client asks to see usage). The most the call can cost is held before it starts (`max_tokens` bounds the completion; 4096 when not given). A stream ends with a `: caravan-receipt BASE64 SIGNATURE` comment before `data: [DONE]`; a client that leaves mid-stream is charged for what was produced and the upstream request is cancelled.",
            Some(inline(object(
                json!({ "model": { "type": "string" },
                        "messages": { "type": "array", "minItems": 1, "items": { "type": "object" } },
                        "stream": { "type": "boolean" }, "max_tokens": { "type": "integer", "minimum": 1 },
                        "stream_options": { "type": "object", "properties": { "include_usage": { "type": "boolean" } } } }),
                &["model", "messages"],
            ))),
            "200",
            ok(
                "the completion (or a text/event-stream of chunks)",
                json!({ "type": "object" }),
            ),
        ),
    );
    let signature = json!({ "type": "string", "pattern": "^0x[0-9a-fA-F]{130}$",
        "description": "the payer's 65-byte EIP-712 signature (r, s, v) of the request" });
    let signed_at = json!({ "type": "integer", "minimum": 0,
        "description": "when the payer signed, in ms since the Unix epoch; accepted for 5 minutes either side of the node's clock" });
    let signed_query = |extra: &str| {
        json!([
            { "name": "payer", "in": "query", "required": true, "schema": address() },
            { "name": "signed_at_ms", "in": "query", "required": true, "schema": signed_at },
            { "name": "signature", "in": "query", "required": true, "schema": signature,
              "description": format!("the payer's wallet signature of the EIP-712 typed data {extra}") },
        ])
    };
    const SIGNED: &str = "Only the payer's own wallet may do this: it signs EIP-712 typed data under the domain {name: \"caravan\", version: \"1\"} (`eth_signTypedData_v4` in any wallet, or `caravan key` with a key file), naming as `node` this node's address from GET /v1/node, so no other node accepts the request.";
    let issue = gateway_operation(
        &format!(
            "Issue an API key for the payer that signs the request. {SIGNED} The typed data is IssueApiKey(address payer,address node,string[] scopes,uint32 expiresInDays,string name,uint64 signedAtMs), with the scopes as sent (models, chat, embeddings and classify in that order when left out; labeling, requesting and reviewing only when asked for) and expiresInDays 0 for a key that never expires; the key expires that many days after signedAtMs. A signed request issues one key only (409 signature_reused). The secret is in the response once; the node keeps only its hash."
        ),
        Some(inline(object(
            json!({ "payer": address(),
                    "scopes": { "type": "array", "items": reference("Scope") },
                    "expires_in_days": { "type": "integer", "minimum": 1 }, "name": { "type": "string", "maxLength": 120 },
                    "signed_at_ms": signed_at, "signature": signature }),
            &["payer", "signed_at_ms", "signature"],
        ))),
        "201",
        ok("issued", reference("ApiKey")),
    );
    add("post", "/v1/keys", issue);
    let mut list = gateway_operation(
        &format!("The payer's live keys, without their secrets. {SIGNED}"),
        None,
        "200",
        ok(
            "ok",
            json!({ "type": "object", "properties": { "object": { "const": "list" },
            "data": { "type": "array", "items": reference("ApiKey") } } }),
        ),
    );
    list["parameters"] = signed_query("ListApiKeys(address payer,address node,uint64 signedAtMs)");
    add("get", "/v1/keys", list);
    let mut revoke = gateway_operation(
        &format!("Revoke one of the payer's keys; it stops working at once. {SIGNED}"),
        None,
        "200",
        ok(
            "revoked",
            json!({ "type": "object", "properties": { "id": { "type": "string" },
            "revoked": { "const": true } } }),
        ),
    );
    revoke["parameters"] = signed_query(
        "RevokeApiKey(address payer,address node,string key,uint64 signedAtMs), key being the id in the path",
    );
    add("delete", "/v1/keys/{id}", revoke);
    add(
        "get",
        "/v1/balance",
        gateway_operation(
            "The caller's prepaid balances (an API key's payer, or the signed-in account): available (less calls in flight), held by calls in flight, and the on-chain deposits that filled them (each with its chain, transaction and block).",
            None,
            "200",
            ok(
                "ok",
                json!({ "type": "object", "properties": { "payer": address(),
                "balances": { "type": "array", "items": { "type": "object", "properties": {
                    "token": address(), "symbol": { "type": "string" }, "decimals": { "type": "integer" },
                    "available": amount(), "held": amount(),
                    "deposits": { "type": "array", "items": { "type": "object", "properties": {
                        "chain_id": { "type": "integer" }, "transaction": hash(),
                        "log_index": { "type": "integer" }, "block": { "type": "integer" },
                        "amount": amount() } } } } } } } }),
            ),
        ),
    );
    let mut usage = gateway_operation(
        "What the caller (an API key's payer, or the signed-in account) spent on calls over the last `days` UTC days, today included: in each token, the totals, every day (those without calls too) and every model or agent the calls paid, the largest first. `calls` counts the calls made to a model; `uses` also counts an agent's calls that used it as a component. Calls whose charge is still being written appear once it is durable.",
        None,
        "200",
        ok(
            "ok",
            json!({ "type": "object", "properties": { "object": { "const": "usage" },
            "payer": address(), "first_day": { "type": "string", "format": "date" },
            "days": { "type": "integer" },
            "tokens": { "type": "array", "items": { "type": "object", "properties": {
                "token": address(), "symbol": { "type": "string" }, "decimals": { "type": "integer" },
                "calls": { "type": "integer" }, "amount": amount(),
                "per_day": { "type": "array", "items": { "type": "object", "properties": {
                    "date": { "type": "string", "format": "date" }, "calls": { "type": "integer" },
                    "amount": amount() } } },
                "per_model": { "type": "array", "items": { "type": "object", "properties": {
                    "asset": hash(), "name": { "type": "string" }, "kind": { "type": "string" },
                    "calls": { "type": "integer" }, "uses": { "type": "integer" },
                    "amount": amount() } } } } } } } }),
        ),
    );
    usage["parameters"] = json!([{ "name": "days", "in": "query", "required": false,
        "description": "how many UTC days back, today included",
        "schema": { "type": "integer", "minimum": 1, "maximum": MAX_USAGE_DAYS, "default": DEFAULT_USAGE_DAYS } }]);
    add("get", "/v1/usage", usage);
    add(
        "post",
        "/v1/balance/withdrawals",
        spending(operation(
            "Take back prepaid balance the signed-in account has not spent or escrowed (money calls in flight hold stays): it becomes the account's entitlement, claimable on its payout chain with the next epoch's root. 402 insufficient_balance says what is available.",
            Some(inline(object(
                json!({ "token": address(), "amount": amount() }),
                &["token", "amount"],
            ))),
            "201",
            ok(
                "withdrawn",
                json!({ "type": "object", "properties": { "account": address(), "token": address(),
                "symbol": { "type": "string" }, "amount": amount(), "available": amount(),
                "claimable_from_epoch": { "type": "integer" } } }),
            ),
        )),
    );
    let node = gateway_operation(
        "The node's identity: the address it signs receipts with, which every key request signed for this node names. Needs no key.",
        None,
        "200",
        ok(
            "ok",
            json!({ "type": "object", "properties": { "object": { "const": "node" },
            "address": address() } }),
        ),
    );
    add("get", "/v1/node", node);
    sign_in_operations(&mut add);
    operator_operations(&mut add);
    for route in routes {
        let op = &mut paths[route.path][route.method];
        let (security, needs) = security(route.access);
        op["security"] = security;
        op["x-caravan-access"] = json!(needs);
        let error = op["responses"]["400"].clone();
        if route.access != Access::Public {
            op["responses"]["401"] = error.clone();
            op["responses"]["403"] = error;
        }
        let mut parameters = path_parameters(route.path);
        if let Some(Value::Array(rest)) = op.get("parameters") {
            parameters.extend(rest.iter().cloned());
        }
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "caravan node", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Post labeling and writing tasks with a budget, do them, review them, and publish the accepted work as a dataset whose contributors share its royalties; call the models trained on it through an OpenAI-compatible gateway, paid per call from a prepaid balance." },
        "paths": paths,
        "components": { "schemas": schemas(),
            "securitySchemes": {
                "apiKey": { "type": "http", "scheme": "bearer",
                    "description": "an API key from POST /v1/keys (or `caravan key issue`), as `Authorization: Bearer crv_…`; it acts for its account within its scopes" },
                "session": { "type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                    "description": "the session POST /v1/auth/siwe opens when a wallet signs in (EIP-4361); HttpOnly, SameSite=Lax" } } }
    })
}

/// Who may call an operation, as OpenAPI security requirements and in words.
fn security(access: Access) -> (Value, String) {
    match access {
        Access::Public => (json!([]), "public".into()),
        Access::Signed => (
            json!([]),
            "signed: the request carries its signer's EIP-712 signature, checked by the node"
                .into(),
        ),
        Access::Account(scope) => (
            json!([{ "session": [] }, { "apiKey": [scope.name()] }]),
            format!(
                "account: the signed-in caller, or an API key of theirs with the {} scope; acts as the caller only",
                scope.name()
            ),
        ),
        Access::Key(scope) => (
            json!([{ "apiKey": [scope.name()] }]),
            format!("key: an API key with the {} scope", scope.name()),
        ),
        Access::Session => (
            json!([{ "session": [] }]),
            "session: the account's own wallet, signed in".into(),
        ),
        Access::Operator => (
            json!([{ "session": [] }]),
            "operator: the session of an account the node runs with --operator".into(),
        ),
    }
}

fn sign_in_operations(add: &mut impl FnMut(&str, &str, Value)) {
    let session = object(
        json!({ "account": address(), "expires_at_ms": { "type": "integer" },
                "operator": { "type": "boolean", "description": "whether the account may do operator work here" } }),
        &["account", "expires_at_ms", "operator"],
    );
    let mut nonce = ok_op(
        "A sign-in nonce this node made (usable once, for 5 minutes), with what an EIP-4361 message must say to be accepted here: the domain and URI of the node's public URL, version 1, one of the chain ids. With `address` (and optionally `chain_id`), also the exact message for that account to sign with `personal_sign`.",
        object(
            json!({ "nonce": { "type": "string" }, "domain": { "type": "string" }, "uri": { "type": "string" },
                    "version": { "const": "1" }, "chain_ids": { "type": "array", "items": { "type": "integer" } },
                    "statement": { "type": "string" }, "issued_at": { "type": "string" },
                    "expires_at": { "type": "string" }, "expires_at_ms": { "type": "integer" },
                    "message": { "type": "string" } }),
            &[
                "nonce",
                "domain",
                "uri",
                "version",
                "chain_ids",
                "expires_at",
            ],
        ),
    );
    nonce["parameters"] = json!([
        { "name": "address", "in": "query", "required": false, "schema": address() },
        { "name": "chain_id", "in": "query", "required": false, "schema": { "type": "integer" } },
    ]);
    add("get", "/v1/auth/nonce", nonce);
    let mut opened = ok("signed in; the session cookie is set", session.clone());
    opened["headers"] = json!({ "Set-Cookie": { "schema": { "type": "string" },
        "description": format!("{SESSION_COOKIE}=…; HttpOnly; SameSite=Lax (and Secure when the node's public URL is https)") } });
    let mut siwe = operation(
        "Sign in with a wallet: the EIP-4361 message and its personal_sign signature. Each check refuses with its own code: malformed_message, wrong_domain, wrong_uri, wrong_version, unknown_chain, issued_in_the_future, issued_too_long_ago, message_expired, not_yet_valid, malformed_signature, wrong_signer, unknown_nonce. A contract wallet's signature is checked with ERC-1271 on a JSON-RPC chain the node is configured with.",
        Some(inline(object(
            json!({ "message": { "type": "string", "maxLength": 4096 },
                        "signature": { "type": "string", "pattern": "^0x([0-9a-fA-F]{2})+$" } }),
            &["message", "signature"],
        ))),
        "200",
        opened,
    );
    // A signature that is not the named account's (wrong_signer) is 401: the caller is not
    // who the message says.
    siwe["responses"]["401"] = siwe["responses"]["400"].clone();
    add("post", "/v1/auth/siwe", siwe);
    add(
        "get",
        "/v1/auth/session",
        ok_op("Who the session is.", session),
    );
    add(
        "post",
        "/v1/auth/logout",
        operation(
            "End the session (here and for every node sharing this store) and clear its cookie.",
            None,
            "204",
            json!({ "description": "signed out" }),
        ),
    );
}

fn operator_operations(add: &mut impl FnMut(&str, &str, Value)) {
    add(
        "post",
        "/v1/tokens",
        operation(
            "Register an ERC-20 token that payments, budgets and royalties may be made in.",
            Some(inline(object(
                json!({ "address": address(), "symbol": { "type": "string" },
                        "decimals": { "type": "integer", "minimum": 0, "maximum": 36 } }),
                &["address", "symbol", "decimals"],
            ))),
            "201",
            ok("registered", json!({ "type": "object" })),
        ),
    );
    add(
        "post",
        "/v1/epochs",
        operation(
            "Close the current epoch while the node serves: revenue propagates through the lineage and the cumulative settlement root is recorded with the epoch's bundle.",
            None,
            "201",
            ok(
                "closed",
                object(
                    json!({ "epoch": { "type": "integer" }, "root": hash(),
                            "leaves": { "type": "integer" }, "payouts": { "type": "integer" } }),
                    &["epoch", "root"],
                ),
            ),
        ),
    );
    add(
        "post",
        "/v1/chains",
        reaches_a_chain(operation(
            "Add a JSON-RPC chain to settle on: the node connects with the signer key held in its own environment variable `key_env` (never sent or stored) and checks the endpoint serves `chain_id`. Accounts may choose it and sign in on it at once.",
            Some(inline(object(
                json!({ "name": { "type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$" },
                        "url": { "type": "string", "format": "uri" },
                        "chain_id": { "type": "integer", "minimum": 1 },
                        "key_env": { "type": "string" },
                        "confirmations": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 1 } }),
                &["name", "url", "chain_id", "key_env"],
            ))),
            "201",
            ok(
                "added",
                object(
                    json!({ "chain": reference("Chain"), "signer": address() }),
                    &["chain", "signer"],
                ),
            ),
        )),
    );
    add(
        "put",
        "/v1/chains/home",
        reaches_a_chain(operation(
            "Make a chain home (it pays everyone who never chose another), while no root is posted on it or on the current home and no account chose it.",
            Some(inline(object(
                json!({ "name": { "type": "string" } }),
                &["name"],
            ))),
            "200",
            ok("the new home", reference("Chain")),
        )),
    );
    let mut post_root = reaches_a_chain(operation(
        "Post a closed epoch's root on a chain (home when `chain` is left out): its share of the epoch, checked so nobody's cumulative amount goes down, activated at once when the distributor has no delay. 200 with `posted: false` when the chain pays nobody in the epoch or already holds it.",
        Some(inline(object(
            json!({ "chain": { "type": "string" } }),
            &[],
        ))),
        "201",
        ok(
            "posted",
            object(
                json!({ "epoch": { "type": "integer" }, "chain": reference("Chain"),
                            "posted": { "type": "boolean" }, "root": hash(),
                            "leaves": { "type": "integer" }, "gas_used": { "type": "integer" },
                            "activated": { "type": "boolean" },
                            "claimable_after_s": { "type": "integer" },
                            "promised": { "type": "array", "items": object(
                                json!({ "token": address(), "amount": amount() }),
                                &["token", "amount"]) },
                            "reason": { "type": "string" },
                            "active": { "type": "integer" }, "pending": { "type": "integer" } }),
                &["epoch", "chain", "posted"],
            ),
        ),
    ));
    // The same answer when nothing was posted, so nothing was created.
    let mut unchanged = post_root["responses"]["201"].clone();
    unchanged["description"] = json!(
        "nothing posted (`posted: false`): the chain pays nobody in the epoch or already holds its root; `reason` says which"
    );
    post_root["responses"]["200"] = unchanged;
    add("post", "/v1/epochs/{epoch}/roots", post_root);
}

/// An operation that takes money from the caller's prepaid balance: 402 says how much is
/// available.
fn spending(mut op: Value) -> Value {
    op["responses"]["402"] = op["responses"]["400"].clone();
    op
}

/// An operation that waits on a chain, which may fail it: 502 says so (the node's own side
/// failing is a 500).
fn reaches_a_chain(mut op: Value) -> Value {
    let error = op["responses"]["503"].clone();
    op["responses"]["500"] = error.clone();
    op["responses"]["502"] = error;
    op
}

/// The `{name}` segments of `path` as OpenAPI path parameters, each with the shape the route
/// takes (a malformed one is answered 400, an unknown one 404).
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = match name {
                "project" => hash(),
                "account" => address(),
                "epoch" => json!({ "type": "integer", "minimum": 1 }),
                _ => json!({ "type": "string" }),
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect()
}

fn ok_op(summary: &str, schema: Value) -> Value {
    operation(summary, None, "200", ok("ok", schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_exactly_the_routes_each_with_who_may_call_it() {
        let doc = document(&crate::routes::table());
        let mut listed = Vec::new();
        for (path, methods) in doc["paths"].as_object().unwrap() {
            for (method, op) in methods.as_object().unwrap() {
                assert!(
                    op["security"].is_array() && op["x-caravan-access"].is_string(),
                    "{method} {path} does not say who may call it"
                );
                listed.push((method.clone(), path.clone()));
            }
        }
        listed.sort();
        let mut expected: Vec<(String, String)> = crate::routes::table()
            .iter()
            .map(|route| (route.method.to_string(), route.path.to_string()))
            .collect();
        expected.sort();
        assert_eq!(listed, expected);
        let text = doc.to_string();
        for name in text.split("#/components/schemas/").skip(1) {
            let name = &name[..name.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{name} undefined"
            );
        }
        for (path, methods) in doc["paths"].as_object().unwrap() {
            for (method, op) in methods.as_object().unwrap() {
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                let templated: Vec<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                assert_eq!(
                    declared, templated,
                    "{method} {path} declares its path parameters"
                );
            }
        }
        let create = &doc["paths"]["/v1/projects"]["post"];
        assert_eq!(
            create["security"],
            json!([{ "session": [] }, { "apiKey": ["requesting"] }])
        );
        assert_eq!(doc["paths"]["/v1/epochs"]["get"]["security"], json!([]));
    }
}
