//! Test-only: what every deterministic fuzz test shares — a seeded xorshift generator (the
//! same inputs on every run and machine, so a failure reproduces) and the run length,
//! `KANIBAKO_FUZZ_ITERATIONS` for a longer run on demand.

/// Marsaglia's xorshift64: fast, seedable, good enough to pick mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[(self.next() as usize) % from.len()]
    }
}

/// How many inputs a fuzz test runs: `default`, or `KANIBAKO_FUZZ_ITERATIONS`
/// (e.g. `KANIBAKO_FUZZ_ITERATIONS=10000000 cargo test fuzz`).
pub fn iterations(default: u64) -> u64 {
    // A test knob, read where the test runs rather than through HostEnv.
    #[allow(clippy::disallowed_methods)]
    std::env::var("KANIBAKO_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
