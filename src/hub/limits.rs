//! The hub's limits, enforced on the host side whatever a client says: the numbers
//! (with defaults, set from the host's settings only), the per-member request rate and
//! the per-box spawn rate.
//!
//! Pure: time comes in as an argument, so the arithmetic is tested without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub const DEFAULT_MAX_HELPERS: u32 = 8;
/// Upstream's default spawn depth and breadth.
pub const DEFAULT_MAX_DEPTH: u32 = 4;
pub const DEFAULT_MAX_BREADTH: u32 = 4;
pub const DEFAULT_SPAWNS_PER_WINDOW: u32 = 4;
pub const DEFAULT_SPAWN_WINDOW_MS: u64 = 10_000;
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 100;
pub const DEFAULT_CONNECTIONS_PER_MEMBER: usize = 8;
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_MAX_CONSECUTIVE_ERRORS: u32 = 16;
pub const DEFAULT_FOLLOW_QUEUE: usize = 256;
/// Forks one hub makes in its life: each copies the whole project on the host.
pub const DEFAULT_MAX_FORKS: u32 = 4;
/// The message log rotates at this size (one older file is kept, as upstream does).
pub const DEFAULT_LOG_MAX_BYTES: u64 = 1024 * 1024;

/// Every limit of one box's hub. Unknown keys in the hub's config are refused, so a
/// misspelt limit is an error rather than a default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Helpers per box, counted from engine labels (stopped ones included).
    pub max_helpers: u32,
    /// The director's spawn budget; each level below gets one less depth.
    pub max_depth: u32,
    pub max_breadth: u32,
    pub spawns_per_window: u32,
    pub spawn_window_ms: u64,
    /// Per member, all its connections together (a bucket of this many, refilled per second).
    pub requests_per_second: u32,
    /// Open connections per member and socket; one more gets `busy`.
    pub connections_per_member: usize,
    pub max_frame: usize,
    /// A connection that sends nothing for this long is closed (followers excepted).
    pub idle_timeout_ms: u64,
    /// Errors in a row after which the connection is closed.
    pub max_consecutive_errors: u32,
    /// Log entries queued for one follower before the oldest are dropped.
    pub follow_queue: usize,
    pub log_max_bytes: u64,
    /// `crab fork`s one hub makes (a restarted worker starts again from 0).
    pub max_forks: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_helpers: DEFAULT_MAX_HELPERS,
            max_depth: DEFAULT_MAX_DEPTH,
            max_breadth: DEFAULT_MAX_BREADTH,
            spawns_per_window: DEFAULT_SPAWNS_PER_WINDOW,
            spawn_window_ms: DEFAULT_SPAWN_WINDOW_MS,
            requests_per_second: DEFAULT_REQUESTS_PER_SECOND,
            connections_per_member: DEFAULT_CONNECTIONS_PER_MEMBER,
            max_frame: super::frame::MAX_FRAME,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_consecutive_errors: DEFAULT_MAX_CONSECUTIVE_ERRORS,
            follow_queue: DEFAULT_FOLLOW_QUEUE,
            log_max_bytes: DEFAULT_LOG_MAX_BYTES,
            max_forks: DEFAULT_MAX_FORKS,
        }
    }
}

impl Limits {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }

    pub fn spawn_window(&self) -> Duration {
        Duration::from_millis(self.spawn_window_ms)
    }
}

/// A token bucket: `rate` requests at once, refilled at `rate` per second.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(per_second: u32, now: Instant) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Whether one more request may pass now (it is counted if so).
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// At most `max` spawns in any `window`.
#[derive(Debug)]
pub struct SpawnWindow {
    max: u32,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl SpawnWindow {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            recent: VecDeque::new(),
        }
    }

    /// Count a spawn now, or say how long until one is allowed.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        while let Some(&t) = self.recent.front() {
            if now.saturating_duration_since(t) >= self.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() as u64 >= u64::from(self.max) {
            let oldest = self.recent.front().copied().unwrap_or(now);
            return Err(self
                .window
                .saturating_sub(now.saturating_duration_since(oldest)));
        }
        self.recent.push_back(now);
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!(
            "{} spawns per {} s",
            self.max,
            self.window.as_secs_f64().round()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_refills_with_time() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(100, t0);
        assert_eq!((0..150).filter(|_| r.allow(t0)).count(), 100);
        assert!(!r.allow(t0));
        assert!(
            r.allow(t0 + Duration::from_millis(10)),
            "one token per 10 ms"
        );
        assert!(!r.allow(t0 + Duration::from_millis(10)));
        // a long pause refills only up to the burst
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..150).filter(|_| r.allow(later)).count(), 100);
    }

    #[test]
    fn spawns_are_counted_in_a_sliding_window() {
        let t0 = Instant::now();
        let mut w = SpawnWindow::new(4, Duration::from_secs(10));
        for i in 0..4 {
            assert!(w.admit(t0 + Duration::from_secs(i)).is_ok());
        }
        let wait = w.admit(t0 + Duration::from_secs(5)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(5));
        assert!(
            w.admit(t0 + Duration::from_secs(10)).is_ok(),
            "the first fell out"
        );
        assert!(w.admit(t0 + Duration::from_secs(10)).is_err());
        assert_eq!(w.describe(), "4 spawns per 10 s");
    }

    #[test]
    fn limits_read_from_config_with_defaults_and_refuse_unknown_keys() {
        let l: Limits = serde_json::from_str(r#"{"max_helpers": 2}"#).unwrap();
        assert_eq!(l.max_helpers, 2);
        assert_eq!(l.max_depth, DEFAULT_MAX_DEPTH);
        assert_eq!(l.max_frame, 65536);
        assert!(serde_json::from_str::<Limits>(r#"{"max_helper": 2}"#).is_err());
    }
}
