//! Refused calls are not free: each costs the gateway its checks, a count and, at most now and
//! then, a log line. One peer address refusing in a loop (no token, a forged one, a method it may
//! not call) is held to [`Limits::refusals_per_peer`](kefu_kit::limits::Limits) refusals a second,
//! bursts of twice as many; past that its refused calls are answered `RESOURCE_EXHAUSTED` with
//! when to retry, and only counted (`kefu_gateway_refused_calls_total{reason="over_peer_refusals"}`).
//! Its refusals are logged as one line per address every ten seconds, with how many were not.
//! Callers of other addresses, and this address's calls that are not refused, are not touched.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::rate::RateLimiter;

/// How often one address's refusals are logged, at most.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// Addresses remembered at most for logging before the quiet ones are forgotten.
const MAX_REMEMBERED: usize = 10_000;

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Answer it as refused; log it when `log` holds how many of this address's refusals went
    /// unlogged since its last line.
    Answer { log: Option<u64> },
    /// The address is over its refusals: answer `RESOURCE_EXHAUSTED`, to retry after the wait.
    Shed { wait: Duration },
}

pub struct Refusals {
    limiter: RateLimiter,
    logged: Mutex<HashMap<IpAddr, (Instant, u64)>>,
}

impl Refusals {
    pub fn new(per_second: u32) -> Refusals {
        Refusals { limiter: RateLimiter::new(per_second), logged: Mutex::new(HashMap::new()) }
    }

    pub fn per_second(&self) -> u32 {
        self.limiter.per_second()
    }

    /// One refusal of a call from `peer` at `now` (`None`: an address the socket did not give,
    /// which is then one address of its own).
    pub fn refuse(&self, peer: Option<IpAddr>, now: Instant) -> Refusal {
        let key = address(peer).to_string();
        if let Err(wait) = self.limiter.admit(&key, now) {
            self.count_unlogged(peer, now);
            return Refusal::Shed { wait };
        }
        Refusal::Answer { log: self.log_now(peer, now) }
    }

    fn log_now(&self, peer: Option<IpAddr>, now: Instant) -> Option<u64> {
        let ip = address(peer);
        let mut logged = self.logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if logged.len() >= MAX_REMEMBERED && !logged.contains_key(&ip) {
            logged.retain(|_, (said, _)| now.duration_since(*said) < LOG_EVERY);
        }
        match logged.get_mut(&ip) {
            Some((said, left_out)) if now.duration_since(*said) < LOG_EVERY => {
                *left_out += 1;
                None
            }
            Some((said, left_out)) => {
                *said = now;
                Some(std::mem::take(left_out))
            }
            None => {
                logged.insert(ip, (now, 0));
                Some(0)
            }
        }
    }

    fn count_unlogged(&self, peer: Option<IpAddr>, now: Instant) {
        let ip = address(peer);
        let mut logged = self.logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, left_out)) = logged.get_mut(&ip) {
            *left_out += 1;
        } else if logged.len() < MAX_REMEMBERED {
            logged.insert(ip, (now, 1));
        }
    }
}

/// The address a refusal is kept under; every caller whose address the socket did not give shares
/// one.
fn address(peer: Option<IpAddr>) -> IpAddr {
    peer.unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_refusing_in_a_loop_is_shed_and_logged_once_an_interval() {
        let refusals = Refusals::new(10);
        let start = Instant::now();
        let loud = Some(IpAddr::from([127, 0, 0, 2]));
        let verdicts: Vec<Refusal> = (0..100).map(|_| refusals.refuse(loud, start)).collect();
        let answered = verdicts.iter().filter(|verdict| matches!(verdict, Refusal::Answer { .. })).count();
        assert_eq!(answered, 20, "a burst of twice the rate, then shed");
        let logged = verdicts.iter().filter(|verdict| matches!(verdict, Refusal::Answer { log: Some(_) })).count();
        assert_eq!(logged, 1, "one line for the address");
        // Another address is answered and logged on its own.
        assert_eq!(refusals.refuse(Some(IpAddr::from([127, 0, 0, 3])), start), Refusal::Answer { log: Some(0) });
        // Ten seconds on, the address's next refusal is logged with how many were not.
        let later = start + LOG_EVERY;
        assert_eq!(refusals.refuse(loud, later), Refusal::Answer { log: Some(99) });
    }
}
