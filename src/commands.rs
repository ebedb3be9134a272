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
    },
    cli::{Command, ContractsCommand, DeployArgs, DevArgs, FixturesCommand, WatchArgs},
    config::Settings,
    startup::Service,
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
        Command::Watch(args) => watch(args).await,
        Command::Run(args) => serve(args).await,
    }
}

async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let settings = Settings::load(&args.config, true).with_context(|| format!("loading {}", args.config.display()))?;
    let service = Service::build(settings).await?;
    let watcher = service.watcher();
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.cancel();
        }
    });
    tracing::info!(chain_id = service.deployment.chain_id, checkout = %service.deployment.checkout, "watcher starting");
    let heads = tokio::sync::Mutex::new(service.heads().await);
    store::leader::run_as_leader(&service.db, store::leader::WATCHER_LOCK, std::time::Duration::from_secs(1), cancel, |token| {
        let watcher = watcher.clone();
        let heads = &heads;
        async move {
            let receiver = heads.lock().await.take();
            watcher.run(token, receiver).await;
        }
    })
    .await?;
    service.db.close().await;
    Ok(())
}

async fn serve(args: WatchArgs) -> anyhow::Result<()> {
    let settings = Settings::load(&args.config, true).with_context(|| format!("loading {}", args.config.display()))?;
    let service = Service::build(settings).await?;
    let Some(minter) = service.minter() else {
        bail!("chain.issuer_key is not set: the badge minter needs the issuer key (or run `tmai-pay watch` for the watcher alone)");
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.cancel();
        }
    });
    tracing::info!(chain_id = service.deployment.chain_id, issuer = %minter.issuer(), "watcher and minter starting");
    let watcher = service.watcher();
    let watcher_heads = tokio::sync::Mutex::new(service.heads().await);
    let minter_heads = tokio::sync::Mutex::new(service.heads().await);
    let retry = std::time::Duration::from_secs(1);
    let watching = store::leader::run_as_leader(&service.db, store::leader::WATCHER_LOCK, retry, cancel.clone(), |token| {
        let watcher = watcher.clone();
        let heads = &watcher_heads;
        async move { watcher.run(token, heads.lock().await.take()).await }
    });
    let minting = store::leader::run_as_leader(&service.db, store::leader::MINTER_LOCK, retry, cancel.clone(), |token| {
        let minter = minter.clone();
        let heads = &minter_heads;
        async move { minter.run(token, heads.lock().await.take()).await }
    });
    let (w, m) = tokio::join!(watching, minting);
    w?;
    m?;
    service.db.close().await;
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
    PrivateKeySigner::from_str(trimmed)
        .map(Some)
        .map_err(|_| anyhow::anyhow!("{var} is not a valid private key (expected 32 bytes of hex)"))
}

async fn deploy_cmd(args: DeployArgs) -> anyhow::Result<()> {
    let deployer = key_from_env("TMAI_PAY_DEPLOYER_KEY")?
        .context("TMAI_PAY_DEPLOYER_KEY is not set: export the deployer's private key (hex) to deploy")?;
    let quote_signer = match args.quote_signer {
        Some(a) => a,
        None => key_from_env("TMAI_PAY_QUOTE_SIGNER_KEY")?
            .map(|k| k.address())
            .context("no quote signer: pass --quote-signer ADDRESS or set TMAI_PAY_QUOTE_SIGNER_KEY")?,
    };
    let issuer = match args.issuer {
        Some(a) => a,
        None => key_from_env("TMAI_PAY_ISSUER_KEY")?
            .map(|k| k.address())
            .context("no badge issuer: pass --issuer ADDRESS or set TMAI_PAY_ISSUER_KEY")?,
    };
    if !args.test_tokens && args.tokens.is_empty() {
        bail!("no tokens: pass --token ADDRESS (repeatable) for existing ERC-20s, or --test-tokens on a test chain");
    }
    let url = args.rpc_url.parse().with_context(|| format!("--rpc-url {:?} is not a URL", args.rpc_url))?;
    let deployer_address = deployer.address();
    let provider: DynProvider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(deployer))
        .connect_http(url)
        .erased();
    let chain_id = tokio::time::timeout(std::time::Duration::from_secs(15), deploy::preflight(&provider, deployer_address))
        .await
        .map_err(|_| anyhow::anyhow!("cannot reach the RPC endpoint {}: no answer in 15 s", args.rpc_url))?
        .with_context(|| format!("preflight against {}", args.rpc_url))?;
    println!("deploying to chain {chain_id} from {deployer_address}");
    let plan = DeployPlan {
        owner: args.owner.unwrap_or(deployer_address),
        quote_signer,
        issuer,
        treasury: args.treasury.unwrap_or(deployer_address),
        tokens: if args.test_tokens { Tokens::Test { holders: vec![] } } else { Tokens::Existing(args.tokens) },
    };
    let deployment = deploy::deploy(&provider, &plan).await?;
    deployment.write(&args.out)?;
    print_deployment(&deployment);
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
        block_time: args.block_time,
        public: false,
    };
    let anvil = devnet::spawn_anvil(&toolchain, &options)
        .with_context(|| format!("starting anvil on port {} (is the port free?)", args.rpc_port))?;
    check_fixture_code(&anvil, &deployment).await?;
    println!("tmai-pay dev: local chain running");
    println!("  RPC URL        {}", anvil.endpoint());
    println!("  chain id       {}", deployment.chain_id);
    print_deployment(&deployment);
    println!("  funded test wallets (anvil's public test keys; import one into your wallet):");
    for wallet in &deployment.test_wallets {
        println!("    {}  {}", wallet.address, wallet.private_key);
    }
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    drop(anvil);
    println!("stopped");
    Ok(())
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
}
