//! Checks a Sign-In with Ethereum message (EIP-4361, parsed by the `signinwithethereum`
//! crate) against the service's configuration and spends its nonce.
//!
//! Cheap checks come first and cost nothing but CPU. Only a signature that is not the
//! wallet's plain-key signature asks the chain, and then only with a place in sign-in's
//! share of the node and one of the nonce's tries taken first (in that order: a busy
//! refusal costs the member no try).

use alloy::{
    primitives::{Address, B256},
    providers::DynProvider,
};
use signinwithethereum::Message;

use super::{
    AuthService,
    signature::{self, KeyCheck, SignatureError, SignerKind},
};
use crate::{
    config::AuthSettings,
    store::{
        Db, StoreError, auth_nonces,
        auth_nonces::{Issue, Spend},
    },
};

/// Longest message accepted, in bytes (a message with many resources is still far below).
pub const MAX_MESSAGE_BYTES: usize = 4_096;
/// Longest signature accepted, in bytes (ERC-6492 wrappers carry a factory call).
pub const MAX_SIGNATURE_BYTES: usize = 8_192;

/// Why a sign-in was refused. Each has its own code in the API's error shape.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The text is not an EIP-4361 message, or the signature not hex.
    #[error("{0}")]
    Malformed(String),
    /// The message's domain or URI is not one of the allowed origins.
    #[error("{0}")]
    WrongDomain(String),
    /// The message is for another chain.
    #[error("the message is for chain {got}; this service signs in on chain {want}")]
    WrongChain {
        /// The message's chain.
        got: u64,
        /// The service's chain.
        want: u64,
    },
    /// The statement differs from the configured one.
    #[error("the message's statement must be {0:?}")]
    WrongStatement(String),
    /// Expired, not yet valid, or issued too long ago or in the future.
    #[error("{0}")]
    Expired(String),
    /// The nonce was never issued or has expired.
    #[error("{0}")]
    BadNonce(String),
    /// The nonce has been used already.
    #[error("this message has been used to sign in already; ask for a new nonce")]
    Replayed,
    /// The nonce's tries are spent (`auth.tries_per_nonce` failed signature checks).
    #[error("too many failed signature checks with this nonce; ask for a new nonce")]
    TriesSpent,
    /// As many nonces are live as `auth.max_live_nonces` allows.
    #[error("too many sign-ins are under way; try again in {retry_after_secs} s")]
    TooManyNonces {
        /// Seconds until the oldest live nonce expires.
        retry_after_secs: u64,
    },
    /// The signature is not the named wallet's.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The wallet that signed.
    pub wallet: Address,
    /// How it signed.
    pub kind: SignerKind,
    /// The spent nonce.
    pub nonce: String,
    /// The origin the member signed in to (`https://shop.example`).
    pub origin: url::Url,
}

/// Checks `text` signed by `signature` (hex) at unix time `now` on `chain_id`, and spends
/// its nonce. Cheap checks come first; the nonce is spent only once the signature holds,
/// or once `auth.tries_per_nonce` checks that asked the chain have failed.
pub async fn sign_in(
    db: &Db,
    provider: &DynProvider,
    auth: &AuthService,
    chain_id: u64,
    text: &str,
    signature_hex: &str,
    now: u64,
) -> Result<SignedIn, SignInError> {
    let settings = &*auth.settings;
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(SignInError::Malformed(format!("message: longer than {MAX_MESSAGE_BYTES} bytes")));
    }
    let message: Message = text.parse().map_err(|e| SignInError::Malformed(format!("message: not an EIP-4361 message: {e}")))?;
    let signature = parse_signature(signature_hex)?;
    let origin = check_origin(&message, settings)?;
    if message.chain_id != chain_id {
        return Err(SignInError::WrongChain { got: message.chain_id, want: chain_id });
    }
    if let Some(statement) = &settings.statement
        && message.statement.as_deref() != Some(statement.as_str())
    {
        return Err(SignInError::WrongStatement(statement.clone()));
    }
    check_times(&message, settings, now)?;
    usable(auth_nonces::peek(db, &message.nonce, now as i64, settings.tries_per_nonce).await?)?;
    let wallet = Address::from(message.address);
    let hash = B256::from(message.eip191_hash().map_err(|e| SignInError::Malformed(format!("message: {e}")))?);
    let kind = match signature::by_key(wallet, hash, &signature) {
        KeyCheck::Signed => SignerKind::Key,
        KeyCheck::AskChain { recovered } => {
            let _permit = auth.checks.try_permit()?;
            usable(auth_nonces::take_try(db, &message.nonce, now as i64, settings.tries_per_nonce).await?)?;
            signature::on_chain(provider, auth.checks.gas(), wallet, hash, &signature, recovered).await?
        }
    };
    usable(auth_nonces::spend(db, &message.nonce, now as i64).await?)?;
    Ok(SignedIn { wallet, kind, nonce: message.nonce, origin })
}

/// Returns `Ok` when the nonce was (or could be) spent, else why not.
fn usable(spend: Spend) -> Result<(), SignInError> {
    match spend {
        Spend::Spent => Ok(()),
        Spend::Replayed => Err(SignInError::Replayed),
        Spend::Exhausted => Err(SignInError::TriesSpent),
        Spend::Expired => Err(SignInError::BadNonce("the nonce has expired; ask for a new one".into())),
        Spend::Unknown => Err(SignInError::BadNonce("the nonce was not issued by this service; ask POST /v1/auth/nonce".into())),
    }
}

fn parse_signature(text: &str) -> Result<Vec<u8>, SignInError> {
    let text = text.trim();
    let hex = text.strip_prefix("0x").unwrap_or(text);
    if hex.len() > MAX_SIGNATURE_BYTES * 2 {
        return Err(SignInError::Malformed(format!("signature: longer than {MAX_SIGNATURE_BYTES} bytes")));
    }
    let bytes = alloy::hex::decode(hex).map_err(|_| SignInError::Malformed("signature: not hex (0x and an even number of hex digits)".into()))?;
    if bytes.len() < 64 {
        return Err(SignInError::Malformed("signature: too short to be a signature".into()));
    }
    Ok(bytes)
}

/// Returns the allowed origin the message's domain and URI both belong to.
fn check_origin(message: &Message, settings: &AuthSettings) -> Result<url::Url, SignInError> {
    let domain = message.domain.as_str().to_ascii_lowercase();
    let uri = url::Url::parse(message.uri.as_str()).map_err(|_| SignInError::WrongDomain(format!("URI {} is not an absolute URL", message.uri)))?;
    for allowed in &settings.allowed_origins {
        let Ok(origin) = url::Url::parse(allowed) else { continue };
        if authority(&origin) != domain {
            continue;
        }
        if message.scheme.as_deref().is_some_and(|s| !s.eq_ignore_ascii_case(origin.scheme())) {
            continue;
        }
        if uri.origin() != origin.origin() {
            return Err(SignInError::WrongDomain(format!("URI {} is not on {}", message.uri, origin.origin().ascii_serialization())));
        }
        return Ok(origin);
    }
    Err(SignInError::WrongDomain(format!("domain {domain} is not allowed to sign in members here")))
}

/// `host[:port]` of `url`, lower case, with the port only when it is not the scheme's default.
fn authority(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

fn check_times(message: &Message, settings: &AuthSettings, now: u64) -> Result<(), SignInError> {
    let at = |t: &signinwithethereum::TimeStamp| t.as_ref().unix_timestamp();
    let now = now as i64;
    let skew = settings.clock_skew_secs as i64;
    let issued = at(&message.issued_at);
    if issued > now + skew {
        return Err(SignInError::Expired("the message's Issued At is in the future; check the device's clock".into()));
    }
    if issued < now - settings.nonce_ttl_secs as i64 - skew {
        return Err(SignInError::Expired("the message was issued too long ago; sign in again".into()));
    }
    if let Some(expiry) = &message.expiration_time
        && at(expiry) <= now
    {
        return Err(SignInError::Expired("the message has expired; sign in again".into()));
    }
    if let Some(not_before) = &message.not_before
        && at(not_before) > now + skew
    {
        return Err(SignInError::Expired("the message is not valid yet (Not Before)".into()));
    }
    Ok(())
}

/// Returns a new nonce (17 letters and digits) stored for `settings.nonce_ttl_secs`, or
/// [`SignInError::TooManyNonces`] while `settings.max_live_nonces` are live.
pub async fn new_nonce(db: &Db, settings: &AuthSettings, now: u64) -> Result<(String, u64), SignInError> {
    let nonce = signinwithethereum::generate_nonce();
    let expires_at = now + settings.nonce_ttl_secs;
    match auth_nonces::insert(db, &nonce, now as i64, expires_at as i64, settings.max_live_nonces).await? {
        Issue::Issued => Ok((nonce, expires_at)),
        Issue::Full { next_expiry } => Err(SignInError::TooManyNonces { retry_after_secs: (next_expiry - now as i64).max(1) as u64 }),
    }
}
