//! Calls per second, per principal: one caller in a loop cannot take the gateway from everyone
//! else. A token bucket per subject (every token of one person or system shares it), refilled at
//! the rate (`KEFU_RATE_LIMIT`) and holding twice as much for bursts; a call finding it empty is
//! `RESOURCE_EXHAUSTED` at once, told when to retry. kefu's own services are not limited.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Buckets kept at most before full ones are forgotten (a full bucket is the same as none).
const MAX_BUCKETS: usize = 10_000;

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> RateLimiter {
        let per_second = f64::from(per_second.max(1));
        RateLimiter { per_second, burst: per_second * 2.0, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one call from `principal`'s bucket at `now`; how long to wait if it is empty.
    pub fn admit(&self, principal: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(principal) {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (tokens, last)| *tokens + now.duration_since(*last).as_secs_f64() * per_second < burst);
        }
        let (tokens, last) = buckets.entry(principal.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }

    pub fn per_second(&self) -> u32 {
        self.per_second as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_gets_its_burst_then_its_rate_and_others_theirs() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        assert!((0..20).all(|_| limiter.admit("tokens/a", start).is_ok()), "a burst of twice the rate");
        let wait = limiter.admit("tokens/a", start).expect_err("empty");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(limiter.admit("tokens/b", start).is_ok(), "another principal is not affected");
        assert!(limiter.admit("tokens/a", start + Duration::from_millis(100)).is_ok(), "refilled at the rate");
        assert!(limiter.admit("tokens/a", start + Duration::from_millis(100)).is_err());
    }
}
