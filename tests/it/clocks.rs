//! Two clocks, one time (issue 27 §4): the service signs a quote's deadline by its clock,
//! the contract judges it by block time. A local chain moved 30 days ahead takes the
//! service's clock with it (`chain_time::follow_chain_time`, what `tmai-pay dev` runs), so a
//! checkout made afterwards is payable and activates — with no guard loosened.

use std::time::Duration;

use alloy::providers::ext::AnvilApi;
use tmai_pay::{chain::chain_time::follow_chain_time, clock::Clock, config::HttpSettings};
use tokio_util::sync::CancellationToken;

use crate::{
    api::{App, checkout_body, fetch_quote},
    db::{DbKind, on_both_databases},
    harness::CONFIRMATIONS,
};

const DAY: u64 = 86_400;

async fn a_chain_moved_ahead_takes_the_service_clock_with_it(kind: DbKind) {
    let clock = Clock::system();
    let service_clock = clock.clone();
    let app = App::spawn_configured(kind, HttpSettings { rate_limit_per_second: 0, ..Default::default() }, move |state| state.with_clock(service_clock)).await;
    app.h.rpc.anvil_increase_time(30 * DAY).await.unwrap();
    app.h.mine(1).await;
    let chain_now = app.h.chain_now().await;

    // Before the clock follows: a quote made now would be past its deadline on this chain.
    let (status, stale) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(checkout_body(&app, 1)), None).await;
    assert_eq!(status, 201, "{stale}");
    assert!(stale["quote"]["deadline"].as_u64().unwrap() < chain_now, "{stale}");

    // The follower moves the service's clock to the chain's time.
    let cancel = CancellationToken::new();
    tokio::spawn(follow_chain_time(app.h.rpc.clone(), clock.clone(), Duration::from_millis(20), cancel.clone()));
    let mut rounds = 0;
    while clock.now() < chain_now {
        rounds += 1;
        assert!(rounds < 500, "the service clock never reached the chain's time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, checkout) = app.call("POST", "/v1/checkouts", "/v1/checkouts", Some(checkout_body(&app, 1)), None).await;
    assert_eq!(status, 201, "{checkout}");
    assert!(checkout["quote"]["deadline"].as_u64().unwrap() > chain_now, "{checkout}");
    let receipt = app.h.pay(1, &fetch_quote(&app, &checkout)).await;
    assert!(receipt.status(), "the payment reverted");
    app.h.mine(CONFIRMATIONS).await;
    // The service's watcher activates by the service's clock, as `Service::watcher` builds it.
    let watcher = app.h.watcher_on(&app.h.test_db.db, app.h.rpc.clone()).with_clock(clock.clone());
    while !watcher.pass().await.unwrap().caught_up {}
    let (status, sub) = app.call("GET", "/v1/subscriptions/{wallet}", &format!("/v1/subscriptions/{}", app.wallet(1)), None, None).await;
    assert_eq!(status, 200, "{sub}");
    assert_eq!(sub["status"], "active", "{sub}");
    cancel.cancel();
}
on_both_databases!(a_chain_moved_ahead_takes_the_service_clock_with_it);
