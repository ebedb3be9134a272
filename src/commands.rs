//! What each command line command does. `main` parses and dispatches here.

use std::{path::Path, str::FromStr};

use alloy::{
    network::EthereumWallet,
    primitives::Address,
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    chain::{
        compile,
        deploy::{self, DeployPlan, Tokens},
        deployment::Deployment,
        devnet::{self, AnvilOptions},
        market,
    },
    cli::{ApiKeyCommand, Command, ContractsCommand, DeployArgs, DevArgs, DevnetCommand, FixturesCommand, WatchArgs},
    config::Settings,
    startup::{OpsListener, Service, Startup},
    store,
    toolchain::Toolchain,
};

/// Runs one command to completion.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Contracts(c) => contracts(c),
        Command::Deploy(args) => deploy_cmd(args).await,
        Command::Fixtures(c) => fixtures(c).await,
        Command::Dev(args) => dev(args).await,
        Command::Devnet(DevnetCommand::Swap(args)) => devnet_swap(args).await,
        Command::Watch(args) => watch(args).await,
        Command::Run(args) => serve(args).await,
        Command::ApiKey(command) => api_key(command).await,
        Command::Rates(args) => rates(args).await,
        Command::CustomerRef(args) => customer_ref(args),
    }
}

async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let settings = Settings::load(&args.config, true).with_context(|| format!("loading {}", args.config.display()))?;
    // Ctrl-C also stops a start-up that waits for the RPC endpoint.
    let cancel = stop_on_ctrl_c();
    let Some(service) = built(Service::build_with(settings, &Startup { cancel: cancel.clone(), gate: None }).await, &cancel)? else { return Ok(()) };
    let watcher = service.watcher();
    tracing::info!(chain_id = service.deployment.chain_id, checkout = %service.deployment.checkout, "watcher starting");
    let service = &service;
    store::leader::run_as_leader(&service.db, store::leader::WATCHER_LOCK, std::time::Duration::from_secs(1), cancel, |token| {
        let watcher = watcher.clone();
        async move { watcher.run(token, service.heads().await).await }
    })
    .await?;
    service.db.close().await;
    Ok(())
}

async fn rates(args: WatchArgs) -> anyhow::Result<()> {
    let settings = Settings::load(&args.config, true).with_context(|| format!("loading {}", args.config.display()))?;
    let (report, healthy) = crate::billing::rates::report::report(&settings).await?;
    print!("{report}");
    if !healthy {
        bail!("a rate is refused: quotes in that token answer 503 rate_unavailable");
    }
    Ok(())
}

fn customer_ref(args: crate::cli::CustomerRefArgs) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let settings = Settings::load(&args.config, true).with_context(|| format!("loading {}", args.config.display()))?;
    let Some(secret) = settings.merchant.customer_ref_secret else {
        bail!("merchant.customer_ref_secret is not set in {}: signed customer references need it", args.config.display());
    };
    let customer = crate::billing::customers::CustomerRef::parse(&args.customer_ref).map_err(|e| anyhow::anyhow!("{e}"))?;
    let expires_at = crate::clock::Clock::system().now() + args.ttl_secs;
    println!("{}", crate::billing::customers::RefSigner::new(secret.expose_secret()).sign(&customer, expires_at));
    Ok(())
}

async fn serve(args: WatchArgs) -> anyhow::Result<()> {
    let settings = Settings::load(&args.config, true).with_context(|| format!("loading {}", args.config.display()))?;
    if settings.chain.issuer_key.is_none() {
        bail!("chain.issuer_key is not set: the badge minter needs the issuer key (or run `tmai-pay watch` for the watcher alone)");
    }
    let bind = settings.http.bind.clone();
    let listener = tokio::net::TcpListener::bind(&bind).await.with_context(|| format!("listening on {bind} (http.bind); is the port free?"))?;
    let ops_bind = settings.http.ops_bind.clone();
    let ops = tokio::net::TcpListener::bind(&ops_bind).await.with_context(|| format!("listening on {ops_bind} (http.ops_bind); is the port free?"))?;
    let address = listener.local_addr()?;
    let ops_address = ops.local_addr()?;
    let cancel = stop_on_ctrl_c();
    // The operations listener answers from now on: alive, and not ready (with what start-up
    // waits for) until the service is built.
    let ops = OpsListener::serve(ops, cancel.clone());
    let startup = Startup { cancel: cancel.clone(), gate: Some(ops.gate()) };
    let Some(service) = built(Service::build_with(settings, &startup).await, &cancel)? else { return Ok(()) };
    tracing::info!(chain_id = service.deployment.chain_id, %address, %ops_address, "watcher and minter starting");
    println!("tmai-pay: API on http://{address}, checkout page at http://{address}/checkout, /metrics and /readyz on http://{ops_address}");
    service.run_until_stopped(listener, ops, cancel).await
}

/// Returns the built service, or `None` when start-up was stopped (Ctrl-C or SIGTERM while
/// it waited for the chain: a clean stop, not an error).
fn built(result: anyhow::Result<Service>, cancel: &tokio_util::sync::CancellationToken) -> anyhow::Result<Option<Service>> {
    match result {
        Err(_) if cancel.is_cancelled() => {
            tracing::info!("stopped during start-up");
            Ok(None)
        }
        other => other.map(Some),
    }
}

fn stop_on_ctrl_c() -> tokio_util::sync::CancellationToken {
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        let terminate = async {
            #[cfg(unix)]
            if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                signal.recv().await;
                return;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        stop.cancel();
    });
    cancel
}

async fn api_key(command: ApiKeyCommand) -> anyhow::Result<()> {
    let (config, action) = match &command {
        ApiKeyCommand::Create { config, .. } | ApiKeyCommand::List { config } | ApiKeyCommand::Revoke { config, .. } => (config, &command),
    };
    let settings = Settings::load(config, false).with_context(|| format!("loading {}", config.display()))?;
    let db = store::Db::connect(&settings.database_url)
        .await
        .with_context(|| format!("opening the database {}", crate::config::redacted(&settings.database_url)))?;
    // A one-shot command: the service's clock is the system clock here.
    let clock = crate::clock::Clock::system();
    match action {
        ApiKeyCommand::Create { name, .. } => {
            let name = name.trim();
            if name.is_empty() || name.len() > 100 {
                bail!("--name must be 1 to 100 characters");
            }
            let (id, key) = store::api_keys::create(&db, name, clock.now() as i64).await?;
            println!("created API key {id} ({name}). It is shown once; store it now:");
            println!("{key}");
        }
        ApiKeyCommand::List { .. } => {
            for k in store::api_keys::list(&db).await? {
                let state = if k.revoked_at.is_some() { "revoked" } else { "live" };
                println!("{:>4}  {:<7}  {}…  {}", k.id, state, k.prefix, k.name);
            }
        }
        ApiKeyCommand::Revoke { id, .. } => {
            if !store::api_keys::revoke(&db, *id, clock.now() as i64).await? {
                bail!("no live API key with id {id}");
            }
            println!("revoked API key {id}");
        }
    }
    db.close().await;
    Ok(())
}

fn contracts(command: ContractsCommand) -> anyhow::Result<()> {
    let toolchain = Toolchain::locate()?;
    match command {
        ContractsCommand::Build => {
            let changed = compile::build(&toolchain)?;
            if changed.is_empty() {
                println!("contracts/artifacts is up to date");
            }
            for path in changed {
                println!("wrote {}", path.display());
            }
        }
        ContractsCommand::Check => {
            let stale = compile::check(&toolchain)?;
            if !stale.is_empty() {
                let list: Vec<String> = stale.iter().map(|p| p.display().to_string()).collect();
                bail!("committed artifacts differ from a fresh compile: {}; run `tmai-pay contracts build`", list.join(", "));
            }
            println!("contracts/artifacts matches a fresh compile");
        }
    }
    Ok(())
}

/// Reads a private key from the environment variable `var`, never echoing it.
fn key_from_env(var: &str) -> anyhow::Result<Option<PrivateKeySigner>> {
    let Ok(raw) = std::env::var(var) else { return Ok(None) };
    let secret = SecretString::from(raw);
    let trimmed = secret.expose_secret().trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    PrivateKeySigner::from_str(trimmed).map(Some).map_err(|_| anyhow::anyhow!("{var} is not a valid private key (expected 32 bytes of hex)"))
}

async fn deploy_cmd(args: DeployArgs) -> anyhow::Result<()> {
    let deployer = key_from_env("TMAI_PAY_DEPLOYER_KEY")?.context("TMAI_PAY_DEPLOYER_KEY is not set: export the deployer's private key (hex) to deploy")?;
    let quote_signer = match args.quote_signer {
        Some(a) => a,
        None => key_from_env("TMAI_PAY_QUOTE_SIGNER_KEY")?
            .map(|k| k.address())
            .context("no quote signer: pass --quote-signer ADDRESS or set TMAI_PAY_QUOTE_SIGNER_KEY")?,
    };
    let issuer = match args.issuer {
        Some(a) => a,
        None => key_from_env("TMAI_PAY_ISSUER_KEY")?.map(|k| k.address()).context("no badge issuer: pass --issuer ADDRESS or set TMAI_PAY_ISSUER_KEY")?,
    };
    if !args.test_tokens && args.tokens.is_empty() {
        bail!("no tokens: pass --token ADDRESS (repeatable) for existing ERC-20s, or --test-tokens on a test chain");
    }
    let shown = crate::config::redacted(&args.rpc_url);
    let url = args.rpc_url.parse().with_context(|| format!("--rpc-url {shown} is not a URL"))?;
    let deployer_address = deployer.address();
    let provider: DynProvider = ProviderBuilder::new().wallet(EthereumWallet::from(deployer)).connect_http(url).erased();
    let chain_id = tokio::time::timeout(std::time::Duration::from_secs(15), deploy::preflight(&provider, deployer_address))
        .await
        .map_err(|_| anyhow::anyhow!("cannot reach the RPC endpoint {shown}: no answer in 15 s"))?
        // The transport's error names the URL, key and all.
        .map_err(|e| anyhow::anyhow!("preflight against {shown}: {}", crate::config::scrubbed(&format!("{e:#}"), &args.rpc_url)))?;
    println!("deploying to chain {chain_id} from {deployer_address}");
    let plan = DeployPlan {
        owner: args.owner.unwrap_or(deployer_address),
        quote_signer,
        issuer,
        treasury: args.treasury.unwrap_or(deployer_address),
        admin_delay: std::time::Duration::from_secs(args.admin_delay_secs),
        tokens: if args.test_tokens { Tokens::Test { holders: vec![] } } else { Tokens::Existing(args.tokens) },
    };
    let deployment = deploy::deploy(&provider, &plan).await?;
    deployment.write(&args.out)?;
    print_deployment(&deployment);
    println!("  admin delay    {} s (a transfer of the badge's admin role waits this long)", args.admin_delay_secs);
    println!("wrote {}", args.out.display());
    Ok(())
}

async fn fixtures(command: FixturesCommand) -> anyhow::Result<()> {
    let toolchain = Toolchain::locate()?;
    let dir = toolchain.fixtures_dir();
    match command {
        FixturesCommand::Regenerate => {
            let deployment = devnet::write_fixtures(&toolchain, &dir).await?;
            print_deployment(&deployment);
            println!("wrote {}", dir.display());
        }
        FixturesCommand::Check => {
            let differences = fixture_differences(&toolchain, &dir).await?;
            if !differences.is_empty() {
                bail!("anvil-fixtures/ differs from a fresh deploy ({}); run `tmai-pay fixtures regenerate`", differences.join(", "));
            }
            println!("anvil-fixtures/ matches a fresh deploy");
        }
    }
    Ok(())
}

/// Returns what differs between the fixtures in `dir` and a fresh deployment.
pub async fn fixture_differences(toolchain: &Toolchain, dir: &Path) -> anyhow::Result<Vec<String>> {
    let (fresh, state) = devnet::make_fixtures(toolchain).await?;
    let mut differences = Vec::new();
    if Deployment::read(&dir.join(devnet::DEPLOYMENT_FILE))? != fresh {
        differences.push(devnet::DEPLOYMENT_FILE.to_string());
    }
    let committed = devnet::read_state(dir)?;
    if devnet::accounts_of(&committed) != devnet::accounts_of(&state) {
        differences.push(format!("accounts in {}", devnet::STATE_FILE));
    }
    Ok(differences)
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let toolchain = Toolchain::locate()?;
    let dir = toolchain.fixtures_dir();
    let deployment = Deployment::read(&dir.join(devnet::DEPLOYMENT_FILE))?;
    let options = AnvilOptions {
        port: Some(args.rpc_port),
        load_state: Some(dir.join(devnet::STATE_FILE)),
        block_time: (args.block_time > 0).then_some(args.block_time),
        public: false,
        timestamp: None,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.http_port))
        .await
        .with_context(|| format!("listening on 127.0.0.1:{} (is the port free? --http-port picks another)", args.http_port))?;
    let ops_listener = tokio::net::TcpListener::bind(("127.0.0.1", args.ops_port))
        .await
        .with_context(|| format!("listening on 127.0.0.1:{} (is the port free? --ops-port picks another)", args.ops_port))?;
    let anvil = devnet::spawn_anvil(&toolchain, &options).with_context(|| format!("starting anvil on port {} (is the port free?)", args.rpc_port))?;
    check_fixture_code(&anvil, &deployment).await?;
    // The fixtures' feed rounds are as old as the fixtures: post the same answers now (and
    // every FEED_REFRESH), so the rates stay healthy however long ago they were made.
    let feeds = match &deployment.market {
        Some(m) => {
            let provider = devnet::provider_for(&anvil, devnet::DEPLOYER);
            market::refresh_feeds(&provider, m).await.context("refreshing the local feeds")?;
            Some(tokio::spawn(keep_feeds_fresh(provider, m.clone())))
        }
        None => None,
    };

    // The chain starts from the fixtures every time, so the service starts from an empty
    // database every time (order ids must not run ahead of or behind the chain).
    let db_path = std::env::temp_dir().join(format!("tmai-pay-dev-{}.db", args.http_port));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_path.display()));
    }
    let mut settings = Settings::from_toml(include_str!("../tmai-pay.example.toml")).context("the built-in dev configuration")?;
    settings.database_url = format!("sqlite://{}", db_path.display());
    settings.deployment_file = dir.join(devnet::DEPLOYMENT_FILE);
    settings.chain.rpc_url = anvil.endpoint();
    settings.chain.ws_url = Some(anvil.ws_endpoint());
    settings.chain.quote_signer_key = Some(SecretString::from(hex_key(&devnet::key(&anvil, devnet::QUOTE_SIGNER))));
    settings.chain.issuer_key = Some(SecretString::from(hex_key(&devnet::key(&anvil, devnet::ISSUER))));
    // Automatic renewal on, with a renewer made for this run (its own key, set on the
    // checkout by the fixtures' owner).
    let renewer = devnet::enable_renewer(&anvil, &deployment).await.context("setting the checkout's renewer")?;
    settings.chain.renewer_key = Some(SecretString::from(hex_key(&renewer)));
    // Moving the local chain's time ahead (cast rpc evm_increaseTime …) moves the
    // service's clock with it.
    settings.chain.follow_chain_time = true;
    // Locally the renewer looks often, so a renewal shows within seconds of moving time.
    settings.renewals.interval_secs = 2;
    settings.renewals.rate_retry_secs = 5;
    settings.http.bind = listener.local_addr()?.to_string();
    settings.http.ops_bind = ops_listener.local_addr()?.to_string();
    // Local anvil carries no key: the page may hand it to wallets.
    settings.http.public_rpc_url = Some(anvil.endpoint());
    // Receipt links in webhooks point at this service.
    settings.http.public_url = Some(format!("http://{}", listener.local_addr()?));
    // Sign-in on, for this page's own origin, with a token key made for this run only
    // (never written anywhere; tokens from an earlier run no longer verify).
    let sign_in_kid = format!("dev-{}", alloy::hex::encode(rand::random::<[u8; 4]>()));
    settings.auth.allowed_origins = vec![format!("http://{}", listener.local_addr()?)];
    settings.auth.keys = vec![crate::config::SigningKeyConfig {
        kid: sign_in_kid.clone(),
        private_key_pem: Some(SecretString::from(crate::auth::tokens::generate_pem())),
        private_key_env: None,
        retired_at: None,
    }];
    settings.http.web_dir = toolchain.root().join("web").join("dist");
    // A receiver on this machine is what local development needs.
    settings.webhooks.allow_private_targets = true;
    // Signed customer references, with a secret made for this run (the example link below
    // carries one).
    let ref_secret = alloy::hex::encode(rand::random::<[u8; 32]>());
    settings.merchant.customer_ref_secret = Some(SecretString::from(ref_secret.clone()));
    settings.merchant.name.get_or_insert_with(|| "tmai-pay dev shop".into());
    settings.merchant.address.get_or_insert_with(|| "1 Local Street\n127.0.0.1 Devnet".into());
    settings.merchant.tax_id.get_or_insert_with(|| "DEV-000000".into());
    if let Ok(secret) = std::env::var("TMAI_PAY__CARD__WEBHOOK_SECRET") {
        settings.card.webhook_secret = Some(SecretString::from(secret));
    }
    let service = Service::build(settings).await?;
    let (_, api_key) = store::api_keys::create(&service.db, "dev", service.clock.now() as i64).await?;
    let address = listener.local_addr()?;

    println!("tmai-pay dev: local chain and service running");
    println!("  checkout page  http://{address}/checkout");
    println!("  API            http://{address}/v1/plans   (docs http://{address}/docs)");
    println!("  operations     http://{}/metrics and /readyz", ops_listener.local_addr()?);
    println!("  RPC URL        {}   (chain id {}, a block every {} s)", anvil.endpoint(), deployment.chain_id, args.block_time);
    println!("  database       {}", db_path.display());
    println!("  merchant key   {api_key}   (Authorization: Bearer …; webhooks may target this machine)");
    println!("  sign-in        on for http://{address} (membership token key {sign_in_kid}: made for this run, development only)");
    let demo = crate::billing::customers::CustomerRef::parse("demo_user").expect("a valid reference");
    let signed = crate::billing::customers::RefSigner::new(&ref_secret).sign(&demo, service.clock.now() + 86_400);
    println!("  customer link  http://{address}/checkout?plan=3&period=monthly&token=TMAI&customer_ref={signed}");
    print_deployment(&deployment);
    println!("  funded test wallets (anvil's public test keys; import one into your wallet):");
    for wallet in &deployment.test_wallets {
        println!("    {}  {}", wallet.address, wallet.private_key);
    }
    if deployment.market.is_some() {
        println!("  plans          priced in dollars: TMAI from the TMAI/WETH pool's 30-minute TWAP × ETH/USD, USD 1:1 (peg feed)");
        println!("  feeds          a new round now and every 10 minutes (the fixtures' rounds are old)");
        println!("  move the market  tmai-pay devnet swap --usd 50000 [--sell] --rpc-url {}", anvil.endpoint());
        println!("                 (the spot moves at once and quotes in TMAI are refused until the TWAP follows)");
    }
    println!("Press Ctrl-C to stop.");
    let cancel = stop_on_ctrl_c();
    let ops_listener = OpsListener::serve(ops_listener, cancel.clone());
    service.run_until_stopped(listener, ops_listener, cancel).await?;
    if let Some(task) = feeds {
        task.abort();
    }
    drop(anvil);
    println!("stopped");
    Ok(())
}

/// How often `tmai-pay dev` posts a new round on the local feeds (well within the example
/// catalog's ETH/USD max_age_secs of 3600).
const FEED_REFRESH: std::time::Duration = std::time::Duration::from_secs(600);

/// Posts the feeds' answers again every [`FEED_REFRESH`] of chain time: a local chain whose
/// time is moved ahead (`evm_increaseTime`, to see a renewal or an expiry) gets fresh rounds
/// within seconds instead of stale rates for the rest of the refresh interval.
async fn keep_feeds_fresh(provider: DynProvider, m: crate::chain::deployment::MarketInfo) {
    let chain_time = || async { provider.get_block_by_number(Default::default()).await.ok().flatten().map(|b| b.header.timestamp) };
    let mut refreshed = chain_time().await.unwrap_or(0);
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        let Some(now) = chain_time().await else { continue };
        if now < refreshed + FEED_REFRESH.as_secs() / 2 {
            continue;
        }
        match market::refresh_feeds(&provider, &m).await {
            Ok(()) => refreshed = now,
            Err(e) => tracing::warn!(error = %e, "refreshing the local feeds failed"),
        }
    }
}

async fn devnet_swap(args: crate::cli::SwapArgs) -> anyhow::Result<()> {
    let path = match args.deployment {
        Some(p) => p,
        None => Toolchain::locate()?.fixtures_dir().join(devnet::DEPLOYMENT_FILE),
    };
    let deployment = Deployment::read(&path)?;
    let url = args.rpc_url.parse().with_context(|| format!("--rpc-url {} is not a URL", crate::config::redacted(&args.rpc_url)))?;
    let provider = ProviderBuilder::new().connect_http(url).erased();
    let done = market::swap_usd(&provider, &deployment, args.usd, args.sell).await.context("is `tmai-pay dev` running on that RPC URL?")?;
    let verb = if args.sell { "sold" } else { "bought" };
    println!("{verb} {:.2} TMAI for ${} in block {}", done.tmai, args.usd, done.block);
    let change = (done.spot_after / done.spot_before - 1.0) * 100.0;
    println!("TMAI spot ${:.6} -> ${:.6} ({change:+.2} %); the TWAP follows over its window", done.spot_before, done.spot_after);
    Ok(())
}

fn hex_key(signer: &PrivateKeySigner) -> String {
    format!("0x{}", alloy::hex::encode(signer.to_bytes()))
}

/// Fails when the loaded state does not hold the contracts the deployment file names.
async fn check_fixture_code(anvil: &alloy::node_bindings::AnvilInstance, deployment: &Deployment) -> anyhow::Result<()> {
    let provider = devnet::provider_for(anvil, devnet::DEPLOYER);
    for (name, address) in [("checkout", deployment.checkout), ("badge", deployment.badge)] {
        let code = provider.get_code_at(address).await.context("reading contract code from anvil")?;
        if code.is_empty() {
            bail!("anvil-fixtures/state.json has no {name} contract at {address}; run `tmai-pay fixtures regenerate`");
        }
    }
    if let Some(m) = &deployment.market
        && !market::has_code(&provider, m).await?
    {
        bail!("anvil-fixtures/state.json lacks the market the deployment file names; run `tmai-pay fixtures regenerate`");
    }
    Ok(())
}

fn print_deployment(d: &Deployment) {
    let row = |name: &str, a: Address| println!("  {name:<14} {a}");
    row("checkout", d.checkout);
    row("badge", d.badge);
    row("owner", d.owner);
    row("quote signer", d.quote_signer);
    row("issuer", d.issuer);
    row("treasury", d.treasury);
    for t in &d.tokens {
        println!("  token {:<8} {} ({} decimals{})", t.symbol, t.address, t.decimals, if t.permit { ", permit" } else { "" });
    }
    if let Some(m) = &d.market {
        row("WETH", m.weth);
        row("uniswap v3", m.uniswap_factory);
        row("positions", m.position_manager);
        row("swap router", m.swap_router);
        row("swap quoter", m.quoter);
        row("TMAI/WETH", m.tmai_weth_pool);
        row("WETH/USD", m.weth_usd_pool);
        row("ETH/USD feed", m.eth_usd_feed);
        row("USD peg feed", m.usd_peg_feed);
    }
}
