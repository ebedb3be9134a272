//! The HTTP side, and the only place axum lives. Two listeners: the public one
//! ([`router`]: the `/v1` API, the checkout page, OpenAPI at `/openapi.json` with a docs
//! page at `/docs`, and `/healthz`) and the operations one ([`ops_router`], on loopback by
//! default: Prometheus `/metrics`, `/readyz` and `/healthz`), so that nothing anonymous can
//! make the service count its tables or call its RPC endpoint at will.
//!
//! Every request gets an `x-request-id` (kept when the client sends one) that is in its log
//! span and its response; bodies are limited; slow requests time out; public routes are
//! rate-limited per client ([`clients`]); merchant routes need an API key. Nothing an
//! anonymous client does grows without bound: metric labels take fixed values, the rate
//! limiter forgets idle clients, event streams are capped and end.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use alloy::{
    primitives::Address,
    providers::{DynProvider, Provider},
};
use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{
    billing::{plans::Catalog, quotes::QuoteIssuer},
    chain::deployment::Deployment,
    clock::Clock,
    config::{CardSettings, HttpSettings, WebhookSettings},
    store::{Db, changes::ReadCache},
};

pub mod api;
pub mod auth;
pub mod card;
pub mod clients;
pub mod document;
pub mod error;
pub mod keys;
pub mod members;
pub mod numbers;
pub mod ops;
pub mod pages;
pub mod rates;
pub mod reads;
pub mod streams;
pub mod webhooks;

use error::ApiError;

/// What every handler can reach: one shared [`Shared`] behind an `Arc`, so the clone
/// axum makes for each request is one atomic increment (cloning every field per request,
/// a cancellation token among them, measured ~2% of a checkout).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug, Clone)]
pub struct Shared {
    /// The database.
    pub db: Db,
    /// The plans.
    pub catalog: Arc<Catalog>,
    /// The deployment served.
    pub deployment: Arc<Deployment>,
    /// Signs quotes, when a quote key is configured.
    pub quotes: Option<QuoteIssuer>,
    /// The chain.
    pub provider: DynProvider,
    /// Confirmations a payment needs.
    pub confirmations: u64,
    /// HTTP settings.
    pub http: Arc<HttpSettings>,
    /// Cancelled at shutdown (ends event streams).
    pub cancel: CancellationToken,
    /// The service's clock (tests move it).
    pub clock: Clock,
    /// Outgoing webhook settings (endpoint checks, secret rotation).
    pub webhooks: Arc<WebhookSettings>,
    /// Incoming card webhook settings.
    pub card: Arc<CardSettings>,
    /// Sign-in and membership tokens (`None`: sign-in routes answer 404).
    pub auth: Option<Arc<crate::auth::AuthService>>,
    /// The cached market rates of USD-priced tokens.
    pub rates: Arc<crate::billing::rates::RateBook>,
    /// The latest head seen, with when it was read (shared by all requests).
    head: Arc<tokio::sync::Mutex<(u64, Option<Instant>)>>,
    /// Subscriptions read recently (`None`: the wallet has none), valid until the next
    /// write ([`crate::store::changes`]).
    pub(crate) subscriptions: ReadCache<Address, Option<Arc<crate::billing::activation::Subscription>>>,
    /// The deployment's checkout and token addresses, checksummed once (each checksum is a
    /// keccak hash; a checkout answer shows three of them).
    address_text: Arc<Vec<(Address, String)>>,
    /// Whose `X-Forwarded-For` is believed ([`clients`]).
    pub(crate) clients: clients::TrustedProxies,
    /// Open checkout event streams ([`streams`]).
    pub(crate) streams: Arc<streams::StreamCaps>,
    /// The last readiness answer, with when it was worked out (reused for a second).
    ready: Arc<tokio::sync::Mutex<Option<(Instant, StatusCode, ops::Ready)>>>,
}

/// Subscriptions the read cache holds at most (a few hundred bytes each).
const SUBSCRIPTION_CACHE_ENTRIES: usize = 100_000;

impl AppState {
    /// Returns the state for the given parts, without a quote issuer ([`Self::with_quotes`]).
    pub fn new(
        db: Db,
        catalog: Arc<Catalog>,
        deployment: Deployment,
        provider: DynProvider,
        confirmations: u64,
        http: HttpSettings,
        cancel: CancellationToken,
    ) -> Self {
        let address_text = std::iter::once(deployment.checkout).chain(deployment.tokens.iter().map(|t| t.address)).map(|a| (a, a.to_string())).collect();
        let proxies = http.trusted_proxy_nets().unwrap_or_else(|error| {
            tracing::error!(%error, "http.trusted_proxies is invalid; trusting no proxy");
            Vec::new()
        });
        Self(Arc::new(Shared {
            clients: clients::TrustedProxies::new(proxies),
            streams: streams::StreamCaps::new(http.max_event_streams, http.max_event_streams_per_client),
            ready: Default::default(),
            address_text: Arc::new(address_text),
            db,
            catalog,
            deployment: Arc::new(deployment),
            quotes: None,
            provider,
            confirmations,
            http: Arc::new(http),
            cancel,
            clock: Clock::system(),
            webhooks: Arc::new(WebhookSettings::default()),
            card: Arc::new(CardSettings::default()),
            auth: None,
            rates: Arc::new(crate::billing::rates::RateBook::empty(Clock::system())),
            head: Arc::new(tokio::sync::Mutex::new((0, None))),
            subscriptions: ReadCache::new(SUBSCRIPTION_CACHE_ENTRIES),
        }))
    }

    /// Returns `address` checksummed (from the deployment's addresses when it is one).
    pub(crate) fn address_text(&self, address: Address) -> String {
        match self.address_text.iter().find(|(a, _)| *a == address) {
            Some((_, text)) => text.clone(),
            None => address.to_string(),
        }
    }

    /// Returns the parts to change while the state is being built (copied if shared).
    fn parts(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// Returns the state with a quote issuer (checkouts are refused without one).
    pub fn with_quotes(mut self, quotes: Option<QuoteIssuer>) -> Self {
        self.parts().quotes = quotes;
        self
    }

    /// Returns the state with the market rates `rates` (shown by `GET /v1/plans` and
    /// `/readyz`; the quote issuer prices with its own handle to them).
    pub fn with_rates(mut self, rates: Arc<crate::billing::rates::RateBook>) -> Self {
        self.parts().rates = rates;
        self
    }

    /// Returns the state with `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.parts().clock = clock;
        self
    }

    /// Returns the state with these webhook settings (default: [`WebhookSettings::default`]).
    pub fn with_webhooks(mut self, webhooks: WebhookSettings) -> Self {
        self.parts().webhooks = Arc::new(webhooks);
        self
    }

    /// Returns the state with these card settings (card webhooks are refused without a secret).
    pub fn with_card(mut self, card: CardSettings) -> Self {
        self.parts().card = Arc::new(card);
        self
    }

    /// Returns the state with sign-in (`None`: sign-in routes answer 503).
    pub fn with_auth(mut self, auth: Option<crate::auth::AuthService>) -> Self {
        self.parts().auth = auth.map(Arc::new);
        self
    }

    /// Returns how many times event streams have re-read their checkout (after a commit, the
    /// fallback poll or a deadline), over this state's life.
    pub fn event_stream_reads(&self) -> u64 {
        self.streams.reads()
    }

    /// Returns the chain's head block, read at most every 200 ms whatever the load.
    pub async fn head(&self) -> Option<u64> {
        let mut head = self.head.lock().await;
        if head.1.is_none_or(|at| at.elapsed() > Duration::from_millis(200)) {
            let number = self.provider.get_block_number().await.ok()?;
            *head = (number, Some(Instant::now()));
        }
        Some(head.0)
    }
}

/// The OpenAPI document, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "tmai-pay", description = "Subscription checkout paid on-chain, with soulbound membership badges."),
    paths(
        api::plans, api::create_checkout, api::get_checkout, api::checkout_events, reads::subscription, reads::badge, reads::payments,
        members::comp, members::cancel, members::revoke, members::move_member, members::refund,
        card::webhook,
        webhooks::create_endpoint, webhooks::list_endpoints, webhooks::get_endpoint, webhooks::update_endpoint, webhooks::delete_endpoint,
        webhooks::rotate_secret, webhooks::list_deliveries, webhooks::list_attempts, webhooks::redeliver, webhooks::list_events,
        auth::nonce, auth::verify, auth::logout, auth::me, auth::jwks,
        ops::healthz, ops::readyz,
    ),
    components(schemas(error::ErrorBody, api::Progress, ops::Health, ops::Ready, rates::RateView, rates::UsdPricing)),
    modifiers(&ApiKeyScheme),
    tags(
        (name = "public", description = "Subscribers and the checkout page"),
        (name = "merchant", description = "Needs an API key"),
        (name = "card", description = "The card processor's signed webhooks"),
        (name = "operations"),
    )
)]
pub struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("tmai_sk_…").build()));
        components
            .add_security_scheme("membership_token", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()));
    }
}

/// Returns the Prometheus handle, installing the recorder on first use (once per process).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("tmai_http_request_duration_seconds".into()),
                &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0],
            )
            .expect("valid buckets");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (tests); the handle still renders ours.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Returns the public listener's router: the API, the checkout page, the API documents and
/// `/healthz`.
pub fn router(state: AppState) -> Router {
    prometheus();
    let limits = &state.http;
    let public = Router::new()
        .route("/v1/plans", get(api::plans))
        .route("/v1/checkouts", post(api::create_checkout))
        .route("/v1/checkouts/{id}", get(api::get_checkout))
        .route("/v1/checkouts/{id}/events", get(api::checkout_events))
        .route("/v1/subscriptions/{wallet}", get(reads::subscription))
        .route("/v1/badges/{wallet}", get(reads::badge))
        .route("/v1/auth/nonce", post(auth::nonce))
        .route("/v1/auth/verify", post(auth::verify))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/me", get(auth::me))
        .route("/.well-known/jwks.json", get(auth::jwks));
    let public = if limits.rate_limit_per_second > 0 {
        let per_request = Duration::from_secs_f64(1.0 / f64::from(limits.rate_limit_per_second));
        let config = tower_governor::governor::GovernorConfigBuilder::default()
            .key_extractor(clients::ClientKey(state.clients.clone()))
            .period(per_request)
            .burst_size(limits.rate_limit_burst.max(1))
            .error_handler(|error| {
                let wait = match &error {
                    tower_governor::GovernorError::TooManyRequests { wait_time, .. } => *wait_time,
                    _ => 1,
                };
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", format!("too many requests from your address; retry in {} s", wait.max(1)))
                    .retry_after(wait.max(1))
                    .into_response()
            })
            .finish()
            .expect("rate limit settings are validated");
        let sweeper = clients::RateLimit::new(config.limiter().clone(), RATE_LIMIT_SWEEP);
        public.layer(tower_governor::GovernorLayer { config: Arc::new(config) }).layer(middleware::from_fn_with_state(sweeper, clients::sweep_idle))
    } else {
        public
    };
    let merchant = Router::new()
        .route("/v1/payments", get(reads::payments))
        .route("/v1/payments/{id}/refund", post(members::refund))
        .route("/v1/members/{wallet}/comp", post(members::comp))
        .route("/v1/members/{wallet}/cancel", post(members::cancel))
        .route("/v1/members/{wallet}/revoke", post(members::revoke))
        .route("/v1/members/{wallet}/move", post(members::move_member))
        .route("/v1/webhook-endpoints", post(webhooks::create_endpoint).get(webhooks::list_endpoints))
        .route("/v1/webhook-endpoints/{id}", get(webhooks::get_endpoint).patch(webhooks::update_endpoint).delete(webhooks::delete_endpoint))
        .route("/v1/webhook-endpoints/{id}/rotate-secret", post(webhooks::rotate_secret))
        .route("/v1/webhook-endpoints/{id}/deliveries", get(webhooks::list_deliveries))
        .route("/v1/webhook-endpoints/{id}/attempts", get(webhooks::list_attempts))
        .route("/v1/events", get(webhooks::list_events))
        .route("/v1/events/{id}/redeliver", post(webhooks::redeliver))
        .route_layer(middleware::from_fn_with_state(state.clone(), keys::require_key));
    // Signed by the processor: neither rate-limited per address nor behind an API key.
    let card_in = Router::new().route("/v1/card/webhook", post(card::webhook)).route_layer(DefaultBodyLimit::max(card::MAX_EVENT_BYTES));
    let documents = Router::new().route("/healthz", get(ops::healthz)).route("/openapi.json", get(document::openapi_json)).route("/docs", get(docs));
    // The API benchmark's baseline: the same stack with no work behind it. Not in the
    // production binary (the `test-hooks` feature is on only for tests and benchmarks).
    #[cfg(feature = "test-hooks")]
    let documents = documents.route("/bench/hello", get(hello));
    let page = Router::new().route("/checkout", get(pages::checkout_page)).route("/checkout/assets/{file}", get(pages::checkout_asset));
    let app = Router::new().merge(public).merge(merchant).merge(card_in).merge(documents).merge(page);
    with_common_layers(app, &state).with_state(state)
}

/// Returns the operations listener's router: `/metrics`, `/readyz` and `/healthz`.
pub fn ops_router(state: AppState) -> Router {
    prometheus();
    let app = Router::new().route("/healthz", get(ops::healthz)).route("/readyz", get(ops::readyz)).route("/metrics", get(ops::metrics_page));
    with_common_layers(app, &state).with_state(state)
}

/// How often the rate limiter forgets idle clients, at most.
const RATE_LIMIT_SWEEP: Duration = Duration::from_secs(30);

/// Adds what both listeners share: the one error shape for unknown routes and methods,
/// body limit, metrics, timeout, request ids, tracing, `nosniff`.
fn with_common_layers(app: Router<AppState>, state: &AppState) -> Router<AppState> {
    let timeout = Duration::from_secs(state.http.request_timeout_secs);
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.http.body_limit_bytes))
        .layer(middleware::from_fn(record_metrics))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %method_label(request.method()), path = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::map_response(|mut response: Response| async move {
            response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            response
        }))
}

/// Serves `router` on `listener` until `cancel` fires, then finishes in-flight requests.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, cancel: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(async move { cancel.cancelled().await }).await
}

async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("tmai_http_request_duration_seconds", "method" => method, "route" => route, "status" => status).record(started.elapsed().as_secs_f64());
    response
}

/// Returns the metrics label of `method`: hyper accepts any token as a method, and each
/// label value is a new series kept for the life of the process.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method; see /openapi.json")
}

async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

#[cfg(feature = "test-hooks")]
async fn hello() -> &'static str {
    "hello"
}
