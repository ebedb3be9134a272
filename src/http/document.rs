//! `GET /openapi.json`: utoipa's document ([`super::ApiDoc`], with every constraint the
//! handlers enforce as schema attributes) completed with what only the running service
//! knows, so that data valid per the served document is accepted and invalid data refused:
//! - the catalog's plan ids and the token symbols they are sold in (every token when a plan
//!   is priced in USD; a token without a usable rate is then refused at quote time), as enums of
//!   `CreateCheckout` and `SwitchRequest` (a member's switch);
//! - the event names and families (`subscription.*`) as enums of the endpoint filters and
//!   of `GET /v1/events?type=`;
//! - every event's body under OpenAPI 3.1 `webhooks` (utoipa's document type has no
//!   place for them), with the payload schemas derived from the payload types
//!   ([`crate::events::schema`]);
//! - OpenAPI links from the operations that create ids (checkouts, webhook endpoints,
//!   events) to the operations that take them, so generated calls reach real rows;
//! - not `/readyz`: it is served by the operations listener (`http.ops_bind`), not here.

use std::sync::OnceLock;

use axum::{
    Router,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::{ApiDoc, AppState};
use crate::{billing::plans::Catalog, chain::deployment::TokenInfo, events::EventType};

/// Returns the document's route, `/openapi.json` (anyone may read it; not rate-limited).
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// Serves the document for this service's catalog.
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    static BASE: OnceLock<Value> = OnceLock::new();
    let base = BASE.get_or_init(|| serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises"));
    let doc = served(base, &state.catalog, &state.deployment.tokens);
    ([(header::CONTENT_TYPE, "application/json")], serde_json::to_string_pretty(&doc).expect("JSON serialises")).into_response()
}

/// Returns `base` completed for `catalog` (sold in `tokens`).
pub fn served(base: &Value, catalog: &Catalog, tokens: &[TokenInfo]) -> Value {
    let mut doc = base.clone();
    let plan_ids: Vec<u32> = catalog.plans().map(|p| p.id).collect();
    let symbols: Vec<&str> =
        tokens.iter().filter(|t| catalog.plans().any(|p| p.prices.contains_key(&t.address) || p.price_usd.is_some())).map(|t| t.symbol.as_str()).collect();
    let schemas = &mut doc["components"]["schemas"];
    for schema in ["CreateCheckout", "SwitchRequest"] {
        set_enum(&mut schemas[schema]["properties"]["plan_id"], json!(plan_ids));
        set_enum(&mut schemas[schema]["properties"]["token"], json!(symbols));
    }
    let names: Vec<String> = EventType::names().map(str::to_string).collect();
    let mut filters = names.clone();
    for name in EventType::names() {
        let family = format!("{}.*", name.split('.').next().unwrap_or(name));
        if !filters.contains(&family) {
            filters.push(family);
        }
    }
    for schema in ["CreateEndpoint", "UpdateEndpoint"] {
        set_items_enum(&mut schemas[schema]["properties"]["event_types"], &json!(filters));
    }
    if let Some(params) = doc["paths"]["/v1/events"]["get"]["parameters"].as_array_mut() {
        for p in params.iter_mut().filter(|p| p["name"] == "type") {
            set_enum(&mut p["schema"], json!(names));
        }
    }
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.remove("/readyz");
    }
    // The two log routes share one query type; each takes only its own filter.
    for (path, other) in [("/v1/webhook-endpoints/{id}/deliveries", "event_id"), ("/v1/webhook-endpoints/{id}/attempts", "status")] {
        if let Some(params) = doc["paths"][path]["get"]["parameters"].as_array_mut() {
            params.retain(|p| p["name"] != other);
        }
    }
    // The redelivery body is optional (an empty request redelivers to every endpoint).
    if let Some(body) = doc["paths"]["/v1/events/{id}/redeliver"]["post"].get_mut("requestBody") {
        body["required"] = json!(false);
    }
    add_links(&mut doc);
    add_body_rejections(&mut doc);
    crate::events::schema::publish(&mut doc);
    doc
}

/// Every JSON body goes through `ApiJson`, which answers 400 (not JSON, or not the schema),
/// 413 (too large) or 415 (not `application/json`) before the handler runs: each operation
/// with a JSON request body documents the three.
fn add_body_rejections(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for operation in item.values_mut() {
            if operation.get("requestBody").is_none() || path == "/v1/card/webhook" {
                continue;
            }
            let responses = &mut operation["responses"];
            for (status, description) in
                [("400", "the body is not JSON or not this schema"), ("413", "the body is too large"), ("415", "the body is not application/json")]
            {
                if responses.get(status).is_none() {
                    responses[status] = json!({
                        "description": description,
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
                    });
                }
            }
        }
    }
}

/// Sets `enum` on a string/integer schema, or on the non-null branch of an `Option`'s
/// `oneOf`/type list.
fn set_enum(schema: &mut Value, values: Value) {
    if let Some(branches) = schema.get_mut("oneOf").and_then(Value::as_array_mut) {
        for b in branches.iter_mut().filter(|b| b["type"] != "null") {
            set_enum(b, values.clone());
        }
        return;
    }
    if schema.is_object() {
        schema["enum"] = values;
    }
}

/// Sets `enum` on the items of an array schema (also inside an `Option`'s `oneOf`).
fn set_items_enum(schema: &mut Value, values: &Value) {
    if let Some(branches) = schema.get_mut("oneOf").and_then(Value::as_array_mut) {
        for b in branches.iter_mut() {
            set_items_enum(b, values);
        }
        return;
    }
    if schema.get("items").is_some() {
        set_enum(&mut schema["items"], values.clone());
    }
}

/// A link: source path, method and status, the id's runtime expression, and the (path,
/// method) of each operation that takes the id.
type Link = (&'static str, &'static str, &'static str, &'static str, &'static [(&'static str, &'static str)]);

/// OpenAPI links: from a response that creates an id to the operations that take it.
fn add_links(doc: &mut Value) {
    const ENDPOINT: &str = "/v1/webhook-endpoints/{id}";
    let links: [Link; 3] = [
        ("/v1/checkouts", "post", "201", "$response.body#/id", &[("/v1/checkouts/{id}", "get"), ("/v1/checkouts/{id}/events", "get")]),
        (
            "/v1/webhook-endpoints",
            "post",
            "201",
            "$response.body#/endpoint/id",
            &[
                (ENDPOINT, "get"),
                (ENDPOINT, "patch"),
                (ENDPOINT, "delete"),
                ("/v1/webhook-endpoints/{id}/rotate-secret", "post"),
                ("/v1/webhook-endpoints/{id}/deliveries", "get"),
                ("/v1/webhook-endpoints/{id}/attempts", "get"),
            ],
        ),
        ("/v1/events", "get", "200", "$response.body#/events/0/id", &[("/v1/events/{id}/redeliver", "post")]),
    ];
    for (path, method, status, value, targets) in links {
        let mut map = serde_json::Map::new();
        for (target_path, target_method) in targets {
            if let Some(id) = doc["paths"][target_path][target_method]["operationId"].as_str() {
                map.insert(id.to_string(), json!({ "operationId": id, "parameters": { "id": value } }));
            }
        }
        let response = &mut doc["paths"][path][method]["responses"][status];
        if response.is_object() && !map.is_empty() {
            response["links"] = Value::Object(map);
        }
    }
}
