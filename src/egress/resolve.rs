//! Name resolution for the egress proxy, behind a trait so tests can pin names to
//! addresses and count look-ups.
//!
//! The proxy calls a resolver only for names its policy allowed (a denied name, which
//! may carry a secret in its labels, never reaches DNS), and then connects to an
//! address it checked, never to the name again, so there is no rebinding window.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

pub trait Resolver: Send + Sync {
    /// The addresses of `name` (already normalised), in the order to try them.
    fn resolve(&self, name: &str, port: u16) -> io::Result<Vec<IpAddr>>;
}

/// The system's resolver (`getaddrinfo`, so `/etc/hosts` and nsswitch apply).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, name: &str, port: u16) -> io::Result<Vec<IpAddr>> {
        let mut out: Vec<IpAddr> = Vec::new();
        for sa in (name, port).to_socket_addrs()? {
            if !out.contains(&sa.ip()) {
                out.push(sa.ip());
            }
        }
        Ok(out)
    }
}

/// Fixed answers for some names, and a record of every look-up; names it does not
/// know go to the fallback (or fail, without one).
#[derive(Default)]
pub struct StaticResolver {
    map: HashMap<String, Vec<IpAddr>>,
    fallback: Option<Arc<dyn Resolver>>,
    calls: Mutex<Vec<String>>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer `name` (normalised: lowercase, no trailing dot) with `addrs`.
    pub fn pin(mut self, name: &str, addrs: &[IpAddr]) -> Self {
        self.map
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend_from_slice(addrs);
        self
    }

    pub fn with_fallback(mut self, fallback: Arc<dyn Resolver>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Every name looked up so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Resolver for StaticResolver {
    fn resolve(&self, name: &str, port: u16) -> io::Result<Vec<IpAddr>> {
        if let Ok(mut c) = self.calls.lock() {
            c.push(name.to_owned());
        }
        if let Some(addrs) = self.map.get(name) {
            return Ok(addrs.clone());
        }
        match &self.fallback {
            Some(f) => f.resolve(name, port),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{name}: no such host"),
            )),
        }
    }
}

impl<R: Resolver + ?Sized> Resolver for Arc<R> {
    fn resolve(&self, name: &str, port: u16) -> io::Result<Vec<IpAddr>> {
        (**self).resolve(name, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_answers_record_calls_and_fall_back() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let r = StaticResolver::new().pin("a.test", &[ip]);
        assert_eq!(r.resolve("a.test", 443).unwrap(), vec![ip]);
        assert!(r.resolve("b.test", 443).is_err());
        assert_eq!(r.calls(), ["a.test", "b.test"]);
        let inner = Arc::new(StaticResolver::new().pin("b.test", &[ip]));
        let r = StaticResolver::new().with_fallback(inner.clone());
        assert_eq!(r.resolve("b.test", 1).unwrap(), vec![ip]);
        assert_eq!(inner.calls(), ["b.test"]);
    }

    #[test]
    fn the_system_resolver_answers_ip_literals_without_dns() {
        let r = SystemResolver.resolve("127.0.0.1", 80).unwrap();
        assert_eq!(r, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
    }
}
