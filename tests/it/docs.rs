//! The API docs: `/docs` renders the served document with the Swagger UI bundled from npm
//! and served by the service itself (no outside URL), and the document declares each
//! route's real security scheme.

use serde_json::Value;

use crate::{api::App, db::DbKind};

/// `/docs` answers an HTML page that loads only local assets (each of which answers) and
/// points the renderer at `/openapi.json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_renders_the_document_from_local_assets() {
    let app = App::spawn(DbKind::Sqlite).await;
    let response = app.client.get(format!("{}/docs", app.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let page = response.text().await.unwrap();
    assert!(page.contains("/openapi.json"), "{page}");
    assert!(!page.contains("://"), "the page names an outside URL:\n{page}");
    let assets: Vec<&str> = page.split('"').filter(|s| s.starts_with("/docs/assets/")).collect();
    for needed in ["/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/assets/docs.js"] {
        assert!(assets.contains(&needed), "{needed} missing from the page:\n{page}");
    }
    for asset in assets {
        let response = app.client.get(format!("{}{asset}", app.base)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{asset}");
        let kind = response.headers()["content-type"].to_str().unwrap().to_string();
        let expected = if asset.ends_with(".css") { "text/css" } else { "text/javascript" };
        assert!(kind.starts_with(expected), "{asset}: {kind}");
    }
}

/// Merchant routes need the API key, the member's own routes (`/v1/me…`, a receipt's buyer)
/// the membership token, a receipt either, and no other route declares a scheme; both
/// schemes are declared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_declares_each_routes_security_scheme() {
    let app = App::spawn(DbKind::Sqlite).await;
    let schemes = &app.doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert_eq!(schemes["membership_token"]["scheme"], "bearer");
    let paths = app.doc["paths"].as_object().unwrap();
    let mut merchant = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let names: Vec<&str> = operation["security"]
                .as_array()
                .map(|s| s.iter().flat_map(|r| r.as_object().unwrap().keys().map(String::as_str)).collect())
                .unwrap_or_default();
            let tags: Vec<&Value> = operation["tags"].as_array().map(|t| t.iter().collect()).unwrap_or_default();
            let expected: &[&str] = if path == "/v1/receipts/{id}" {
                &["api_key", "membership_token"]
            } else if path == "/v1/me" || path.starts_with("/v1/me/") || path == "/v1/receipts/{id}/buyer" {
                &["membership_token"]
            } else if tags.iter().any(|t| *t == "merchant") {
                merchant += 1;
                &["api_key"]
            } else {
                &[]
            };
            assert_eq!(names, expected, "{method} {path}");
        }
    }
    assert!(merchant >= 15, "only {merchant} merchant operations");
}
