//! The events' published schemas: OpenAPI 3.1 `webhooks`, one entry per event name, whose
//! request body is the envelope a delivery sends (`{"id", "type", "data"}`, the stored body
//! as it is) with that event's payload as `data`. The payload schemas are derived from the
//! payload types ([`super::Payload`]), the envelope from [`EventType`]: nothing here is
//! written per event.

use serde_json::{Value, json};
use utoipa::openapi::{
    Ref, RefOr,
    schema::{AdditionalProperties, AllOfBuilder, ObjectBuilder, Schema, Type},
};

use super::EventType;

/// The pattern of every event id (`evt_` and 24 hex digits).
pub const EVENT_ID_PATTERN: &str = "^evt_[0-9a-f]{24}$";

/// The name of the envelope schema of `event_type` (`PaymentConfirmedEvent`).
pub fn envelope_name(event_type: EventType) -> String {
    format!("{event_type:?}Event")
}

/// The `customer_ref` every event's `data` may carry besides its payload's fields.
fn customer_ref() -> ObjectBuilder {
    let text = ObjectBuilder::new().schema_type(Type::String).pattern(Some(crate::billing::customers::PATTERN)).description(Some(
        "The merchant's customer reference the event belongs to: the order's for `checkout.*` and `payment.*`, the member's (bound by the first confirmed payment that carried one) for `subscription.*` and `badge.*`. Absent when there is none.",
    ));
    // The payload's own fields are the other `allOf` member's: this one allows them.
    ObjectBuilder::new().property("customer_ref", text).additional_properties(Some(AdditionalProperties::FreeForm(true)))
}

/// Returns the envelope schema of `event_type`, whose `data` is the schema `payload`.
fn envelope(event_type: EventType, payload: &str) -> Schema {
    let id = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(EVENT_ID_PATTERN))
        .description(Some("The event's id: the same on every retry and redelivery (the `webhook-id` header); dedupe on it."));
    let name = ObjectBuilder::new().schema_type(Type::String).enum_values(Some([event_type.as_str()])).description(Some("The event's name."));
    ObjectBuilder::new()
        .description(Some(format!("The body of a `{event_type}` delivery.")))
        .property("id", id)
        .required("id")
        .property("type", name)
        .required("type")
        .property("data", AllOfBuilder::new().item(Ref::from_schema_name(payload)).item(customer_ref()))
        .required("data")
        .into()
}

/// The schemas the webhooks refer to: every payload's and the shapes it refers to, and
/// one envelope per event type. Names are unique.
pub fn components() -> Vec<(String, RefOr<Schema>)> {
    let mut payloads = Vec::new();
    let mut out = Vec::new();
    super::payload_schemas(&mut payloads, &mut out);
    for (event_type, payload) in &payloads {
        out.push((envelope_name(*event_type), RefOr::T(envelope(*event_type, payload))));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|(name, _)| seen.insert(name.clone()));
    out
}

/// Returns the OpenAPI `webhooks` object: for each event name, a `POST` with the event's
/// envelope as its body and the Standard Webhooks headers.
pub fn webhooks() -> Value {
    let header =
        |name: &str, description: &str| json!({ "name": name, "in": "header", "required": true, "description": description, "schema": { "type": "string" } });
    let headers = [
        header("webhook-id", "The event's id (the body's `id`)."),
        header("webhook-timestamp", "Unix seconds when this attempt was signed."),
        header(
            "webhook-signature",
            "`v1,<base64 HMAC-SHA256 of id.timestamp.body>` with the endpoint's `whsec_` secret; several, space-separated, while a rotated secret overlaps.",
        ),
    ];
    let mut hooks = serde_json::Map::new();
    for event_type in EventType::ALL {
        let schema = format!("#/components/schemas/{}", envelope_name(*event_type));
        hooks.insert(
            event_type.as_str().to_string(),
            json!({
                "post": {
                    "operationId": format!("webhook_{}", event_type.as_str().replace('.', "_")),
                    "summary": format!("`{event_type}`"),
                    "tags": ["webhooks"],
                    "parameters": headers,
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": schema } } } },
                    "responses": {
                        "2XX": { "description": "Delivered; any other answer is retried on the schedule." },
                        "410": { "description": "Gone: the endpoint is disabled and its pending deliveries canceled." }
                    }
                }
            }),
        );
    }
    Value::Object(hooks)
}

/// Adds the webhooks and their schemas to the served document `doc`. A schema name the
/// document already holds for something else is a bug (two types, one name): it panics.
pub fn publish(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    for (name, schema) in components() {
        let schema = serde_json::to_value(schema).expect("a schema serializes");
        match schemas.get(&name) {
            Some(existing) => assert_eq!(existing, &schema, "two schemas named {name}"),
            None => schemas[name.as_str()] = schema,
        }
    }
    doc["webhooks"] = webhooks();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_a_webhook_whose_schemas_resolve() {
        let mut doc = json!({ "components": { "schemas": {} } });
        publish(&mut doc);
        for event_type in EventType::ALL {
            let hook = &doc["webhooks"][event_type.as_str()]["post"];
            let reference = hook["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str().unwrap();
            let envelope = &doc["components"]["schemas"][reference.trim_start_matches("#/components/schemas/")];
            assert_eq!(envelope["properties"]["type"]["enum"], json!([event_type.as_str()]));
            let data = envelope["properties"]["data"]["allOf"][0]["$ref"].as_str().unwrap();
            assert!(doc["components"]["schemas"][data.trim_start_matches("#/components/schemas/")].is_object(), "{data}");
        }
        let text = doc.to_string();
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = &reference[..reference.find('"').unwrap()];
            assert!(doc["components"]["schemas"][name].is_object(), "{name} is referred to but not published");
        }
    }
}
