//! The HTTP side, and the only place axum lives. Two listeners: the public one
//! ([`router`]: the `/v1` API, the checkout page, OpenAPI at `/openapi.json` with a docs
//! page at `/docs`, and `/healthz`) and the operations one ([`ops_router`], on loopback by
//! default: Prometheus `/metrics`, `/readyz` and `/healthz`), so that nothing anonymous can
//! make the service count its tables or call its RPC endpoint at will.
//!
//! One file per resource, each with its `router()` and its part of the OpenAPI document
//! (`Api`): [`plans`], [`checkouts`], [`subscriptions`] (and badges), [`auth`] (sign-in),
//! [`payments`], [`members`], [`webhooks`] (endpoints), [`events`], [`card`] (the
//! processor's webhooks), [`pages`] (checkout and docs), [`document`] and [`ops`]. They
//! are merged here under the layers their audience needs.
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
    response::{IntoResponse, Response},
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

pub mod account;
pub mod auth;
pub mod card;
pub mod checkouts;
pub mod clients;
pub mod document;
pub mod error;
pub mod events;
pub mod keys;
pub mod mandates;
pub mod members;
pub mod numbers;
pub mod ops;
pub mod pages;
pub mod params;
pub mod payment_method;
pub mod payments;
pub mod plans;
pub mod rates;
mod receipt_page;
pub mod receipts;
pub mod streams;
pub mod subscriptions;
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
    /// The card processor's API (`None` without `card.api_key`: no card sessions).
    pub processor: Option<crate::billing::card::processor::Processor>,
    /// Sign-in and membership tokens (`None`: sign-in routes answer 404).
    pub auth: Option<Arc<crate::auth::AuthService>>,
    /// The cached market rates of USD-priced tokens.
    pub rates: Arc<crate::billing::rates::RateBook>,
    /// The one-click buy of a missing token, when `[pricing.swap]` is configured.
    pub swaps: Option<Arc<crate::billing::swaps::SwapDesk>>,
    /// The merchant (`[merchant]`): receipts show it.
    pub merchant: Arc<crate::config::MerchantSettings>,
    /// Checks signed customer references (`merchant.customer_ref_secret`).
    pub customer_refs: Option<crate::billing::customers::RefSigner>,
    /// When reminders go out (the account page lists the coming ones).
    pub reminders: Arc<crate::config::ReminderSettings>,
    /// Automatic renewal's terms (`None`: no renewer key, the mandate routes answer 409).
    pub renewals: Option<Arc<crate::config::RenewalSettings>>,
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
            processor: None,
            auth: None,
            rates: Arc::new(crate::billing::rates::RateBook::empty(Clock::system())),
            swaps: None,
            merchant: Arc::new(crate::config::MerchantSettings::default()),
            customer_refs: None,
            reminders: Arc::new(crate::config::ReminderSettings::default()),
            renewals: None,
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

    /// Returns the state with the one-click buy (`None`: `GET /v1/swaps/quote` answers 404
    /// and the page offers `buy_url`).
    pub fn with_swaps(mut self, swaps: Option<Arc<crate::billing::swaps::SwapDesk>>) -> Self {
        self.parts().swaps = swaps;
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

    /// Returns the state with these card settings (card webhooks are refused without a
    /// secret) and, with `card.api_key`, the processor's client (the card session routes
    /// answer 404 `card_not_configured` without one, and a client that cannot be built is
    /// logged and left out the same way).
    pub fn with_card(mut self, card: CardSettings) -> Self {
        self.parts().processor = crate::billing::card::processor::Processor::from_settings(&card).unwrap_or_else(|error| {
            tracing::error!(%error, "the card processor client cannot be built; card sessions are off");
            None
        });
        self.parts().card = Arc::new(card);
        self
    }

    /// Returns the card session context: the processor, catalog, store and public URL.
    pub(crate) fn card_sessions(&self) -> crate::billing::card::sessions::Sessions<'_> {
        crate::billing::card::sessions::Sessions {
            processor: self.processor.as_ref(),
            catalog: &self.catalog,
            db: &self.db,
            public_url: self.http.public_url(),
        }
    }

    /// Returns the same state with `catalog` (tests sell a plan without a card price).
    pub fn with_catalog(mut self, catalog: Arc<Catalog>) -> Self {
        self.parts().catalog = catalog;
        self
    }

    /// Returns the state with the merchant's settings (receipts, signed customer references).
    pub fn with_merchant(mut self, merchant: crate::config::MerchantSettings) -> Self {
        use secrecy::ExposeSecret;
        self.parts().customer_refs = merchant.customer_ref_secret.as_ref().map(|s| crate::billing::customers::RefSigner::new(s.expose_secret()));
        self.parts().merchant = Arc::new(merchant);
        self
    }

    /// Returns the state with automatic renewal's terms (when a renewer key is set).
    pub fn with_renewals(mut self, renewals: Option<crate::config::RenewalSettings>) -> Self {
        self.parts().renewals = renewals.map(Arc::new);
        self
    }

    /// Returns the state with the reminder settings (the account page lists the coming
    /// reminders).
    pub fn with_reminders(mut self, reminders: crate::config::ReminderSettings) -> Self {
        self.parts().reminders = Arc::new(reminders);
        self
    }

    /// Returns the state with sign-in (`None`: sign-in routes answer 404 `sign_in_not_configured`).
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

/// The OpenAPI document, generated from the handlers and types: each resource's part
/// ([`Resources`]) under one title, its tags and security schemes.
#[derive(OpenApi)]
#[openapi(
    info(title = "tmai-pay", description = "Subscription checkout paid on-chain, with soulbound membership badges."),
    components(schemas(error::ErrorBody, checkouts::Progress, ops::Health, ops::Ready, rates::RateView, rates::UsdPricing)),
    modifiers(&Resources, &ApiKeyScheme),
    tags(
        (name = "public", description = "Subscribers and the checkout page"),
        (name = "merchant", description = "Needs an API key"),
        (name = "card", description = "The card processor's signed webhooks"),
        (name = "operations"),
    )
)]
pub struct ApiDoc;

/// Adds each resource's paths (and the schemas they use), in the order of the routes.
struct Resources;

impl Modify for Resources {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for part in [
            plans::Api::openapi(),
            checkouts::Api::openapi(),
            subscriptions::Api::openapi(),
            payments::Api::openapi(),
            members::Api::openapi(),
            card::Api::openapi(),
            webhooks::Api::openapi(),
            events::Api::openapi(),
            auth::Api::openapi(),
            receipts::Api::openapi(),
            account::Api::openapi(),
            mandates::Api::openapi(),
            payment_method::Api::openapi(),
            ops::Api::openapi(),
        ] {
            openapi.merge(part);
        }
    }
}

/// Declares the two bearer schemes: the merchant's API key and the member's token.
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
    // Anyone's: rate-limited per client.
    let public = Router::new()
        .merge(plans::router())
        .merge(checkouts::router())
        .merge(subscriptions::router())
        .merge(auth::router())
        .merge(receipts::router())
        .merge(account::router())
        .merge(mandates::router())
        .merge(payment_method::router());
    let public = rate_limited(public, &state, state.http.rate_limit_per_second, state.http.rate_limit_burst);
    // The processor's: signed, so neither an API key nor the public routes' budget; a
    // budget of its own per client, and the smallest body limit the processor needs.
    let card = rate_limited(card::router(state.card.body_limit_bytes), &state, state.card.rate_limit_per_second, state.card.rate_limit_burst);
    // The merchant's: every request needs an API key.
    let merchant = Router::new()
        .merge(payments::router())
        .merge(members::router())
        .merge(webhooks::router())
        .merge(events::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), keys::require_key));
    let documents = Router::new().merge(ops::public_router()).merge(document::router());
    // The API benchmark's baseline: the same stack with no work behind it. Not in the
    // production binary (the `test-hooks` feature is on only for tests and benchmarks).
    #[cfg(feature = "test-hooks")]
    let documents = documents.route("/bench/hello", axum::routing::get(hello));
    let app = Router::new().merge(public).merge(merchant).merge(card).merge(documents).merge(pages::router());
    with_common_layers(app, &state).with_state(state)
}

/// Returns `routes` limited to `per_second` requests per client (with bursts of `burst`),
/// or as they are when the limit is 0. Each call makes a limiter of its own: a client's
/// budget on these routes is not spent on others.
fn rate_limited(routes: Router<AppState>, state: &AppState, per_second: u32, burst: u32) -> Router<AppState> {
    if per_second == 0 {
        return routes;
    }
    let per_request = Duration::from_secs_f64(1.0 / f64::from(per_second));
    let config = tower_governor::governor::GovernorConfigBuilder::default()
        .key_extractor(clients::ClientKey(state.clients.clone()))
        .period(per_request)
        .burst_size(burst.max(1))
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
    routes.layer(tower_governor::GovernorLayer { config: Arc::new(config) }).layer(middleware::from_fn_with_state(sweeper, clients::sweep_idle))
}

/// Returns the operations listener's router: `/metrics`, `/readyz` and `/healthz`.
pub fn ops_router(state: AppState) -> Router {
    prometheus();
    with_common_layers(ops::router(), &state).with_state(state)
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

#[cfg(feature = "test-hooks")]
async fn hello() -> &'static str {
    "hello"
}
