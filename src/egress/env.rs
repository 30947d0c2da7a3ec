//! The environment a box under `allowlist` gets so that its tools use the proxy.
//!
//! Pure. Both spellings of each variable are set, because tools disagree on which they
//! read (curl reads `http_proxy` only in lowercase; Go and Python read either).

use std::net::SocketAddr;

/// The forwarder's default address in the box.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3128";

/// `(name, value)` pairs for a box whose forwarder listens on `listen`.
pub fn proxy_env(listen: SocketAddr) -> Vec<(&'static str, String)> {
    let url = format!("http://{listen}");
    let no_proxy = "localhost,127.0.0.1,::1".to_owned();
    vec![
        ("HTTP_PROXY", url.clone()),
        ("HTTPS_PROXY", url.clone()),
        ("http_proxy", url.clone()),
        ("https_proxy", url),
        ("NO_PROXY", no_proxy.clone()),
        ("no_proxy", no_proxy),
        // Node 22.12+/24 honour the proxy variables only with this set
        ("NODE_USE_ENV_PROXY", "1".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_points_at_the_forwarder() {
        let env = proxy_env(DEFAULT_LISTEN.parse().unwrap());
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            assert_eq!(get(k), Some("http://127.0.0.1:3128"), "{k}");
        }
        for k in ["NO_PROXY", "no_proxy"] {
            assert_eq!(get(k), Some("localhost,127.0.0.1,::1"), "{k}");
        }
        assert_eq!(get("NODE_USE_ENV_PROXY"), Some("1"));
        assert_eq!(env.len(), 7);
        let v6 = proxy_env("[::1]:3128".parse().unwrap());
        assert_eq!(v6[0].1, "http://[::1]:3128");
    }
}
