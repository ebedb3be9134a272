//! Showing URLs without their secrets: database, RPC and websocket URLs are logged and
//! printed redacted, also inside the transport's own error messages.

/// Returns `url` fit to show or log: credentials, query values, fragments and path segments
/// that look like API keys (`/v3/<32 hex>`, `/v2/<key>`, long tokens with digits) become
/// `***`. A value that is not a URL is shown as `<not a URL>`.
pub fn redacted(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url.trim()) else { return "<not a URL>".into() };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let _ = parsed.set_username("***");
        let _ = parsed.set_password(None);
    }
    if parsed.query().is_some() {
        let names: Vec<String> = parsed.query_pairs().map(|(name, _)| name.into_owned()).collect();
        let query = names.iter().map(|name| format!("{name}=***")).collect::<Vec<_>>().join("&");
        parsed.set_query(Some(&query));
    }
    parsed.set_fragment(None);
    if !parsed.cannot_be_a_base() {
        let segments: Vec<String> = parsed.path().split('/').map(String::from).collect();
        let mut kept = Vec::with_capacity(segments.len());
        for (i, segment) in segments.iter().enumerate() {
            let after_version = i > 0 && matches!(segments[i - 1].as_str(), "v1" | "v2" | "v3" | "v4");
            kept.push(if looks_like_key(segment, after_version) { "***".to_string() } else { segment.clone() });
        }
        parsed.set_path(&kept.join("/"));
    }
    parsed.to_string().replace("%2A", "*")
}

/// Returns `text` (an error message, say) with every spelling of `url` in it replaced by
/// [`redacted`]`(url)`: HTTP client errors name the URL they failed on.
pub fn scrubbed(text: &str, url: &str) -> String {
    let shown = redacted(url);
    let mut text = text.to_string();
    let mut spellings = vec![url.trim().to_string()];
    if let Ok(parsed) = url::Url::parse(url.trim()) {
        spellings.push(parsed.to_string());
    }
    spellings.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for spelling in spellings.iter().filter(|s| !s.is_empty()) {
        text = text.replace(spelling.as_str(), &shown);
    }
    text
}

/// Returns `text` with every URL in it (`http`, `https`, `ws`, `wss`) replaced by its
/// [`redacted`] form: for errors whose URL the caller does not know (a transport's error
/// passed up through a contract call, say).
pub fn scrubbed_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = ["https://", "http://", "wss://", "ws://"].iter().filter_map(|scheme| rest.find(scheme)).min() {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find(|c: char| c.is_whitespace() || matches!(c, ')' | '(' | '"' | '\'' | '<' | '>' | ',' | '`')).unwrap_or(tail.len());
        out.push_str(&redacted(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Whether a path segment looks like a key: a run of 20+ letters, digits, `-` and `_`
/// holding a digit (Infura, Ankr, QuickNode), or of 16+ after a `/v2/`-style version
/// segment (Alchemy keys need not hold a digit).
fn looks_like_key(segment: &str, after_version: bool) -> bool {
    let tokenish = segment.len() >= 16 && segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    tokenish && (after_version || (segment.len() >= 20 && segment.chars().any(|c| c.is_ascii_digit())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials_or_keys() {
        for (url, shown) in [
            ("postgres://tmai:s3cret@db.internal:5432/tmai", "postgres://***@db.internal:5432/tmai"),
            ("postgres://tmai@db.internal/tmai?sslmode=require&password=hunter2", "postgres://***@db.internal/tmai?sslmode=***&password=***"),
            ("sqlite://tmai-pay.db", "sqlite://tmai-pay.db"),
            ("sqlite:///var/lib/tmai-pay/tmai-pay.db", "sqlite:///var/lib/tmai-pay/tmai-pay.db"),
            ("https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef", "https://mainnet.infura.io/v3/***"),
            ("wss://mainnet.infura.io/ws/v3/0123456789abcdef0123456789abcdef", "wss://mainnet.infura.io/ws/v3/***"),
            ("https://eth-mainnet.g.alchemy.com/v2/AbCdEfGhIjKlMnOpQrStUvWxYz_-abcd", "https://eth-mainnet.g.alchemy.com/v2/***"),
            ("https://rpc.ankr.com/eth/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "https://rpc.ankr.com/eth/***"),
            ("https://old-frosty-sun.quiknode.pro/4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b/", "https://old-frosty-sun.quiknode.pro/***/"),
            ("https://rpc.example.org/?apikey=abc123", "https://rpc.example.org/?apikey=***"),
            ("https://user:pass@rpc.example.org/", "https://***@rpc.example.org/"),
            ("http://127.0.0.1:8545", "http://127.0.0.1:8545/"),
            ("ws://127.0.0.1:8545", "ws://127.0.0.1:8545/"),
            ("https://base-mainnet.public.blastapi.io", "https://base-mainnet.public.blastapi.io/"),
            ("https://rpc.example.org/ethereum/mainnet", "https://rpc.example.org/ethereum/mainnet"),
            ("not a url", "<not a URL>"),
        ] {
            assert_eq!(redacted(url), shown, "{url}");
        }
        let url = "https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef";
        let error = format!("error sending request for url ({url}): connection refused; also {url}");
        let scrubbed = scrubbed(&error, url);
        assert!(!scrubbed.contains("0123456789abcdef"), "{scrubbed}");
        assert!(scrubbed.contains("https://mainnet.infura.io/v3/***"), "{scrubbed}");
        let found = scrubbed_urls(&format!("Chainlink feed 0x12 cannot be read: error sending request for url ({url}): reset; at {url}, again"));
        assert_eq!(
            found,
            "Chainlink feed 0x12 cannot be read: error sending request for url (https://mainnet.infura.io/v3/***): reset; at https://mainnet.infura.io/v3/***, again"
        );
        assert_eq!(scrubbed_urls("no url here"), "no url here");
    }
}
