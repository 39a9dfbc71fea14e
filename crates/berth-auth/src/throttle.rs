//! Slows down password guessing: after a few failures for one account (or from one address),
//! further attempts are refused until a delay has passed; the delay doubles with each failure,
//! up to a cap. A success clears the account's record.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Failures allowed for one account before delays start.
    pub free_per_account: u32,
    /// Failures allowed from one address before delays start (an address may try many names).
    pub free_per_address: u32,
    /// The first delay; doubles with each further failure.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A record is forgotten after this long without failures.
    pub forget_after: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_per_account: 5,
            free_per_address: 20,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            forget_after: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// A refused attempt: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    accounts: Mutex<HashMap<String, Record>>,
    addresses: Mutex<HashMap<String, Record>>,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    /// Whether an attempt for `account` from `address` may go ahead now.
    pub fn check(&self, account: &str, address: &str) -> Result<(), Throttled> {
        let now = Instant::now();
        let wait = |map: &Mutex<HashMap<String, Record>>, key: &str| {
            let m = map.lock().expect("throttle lock");
            m.get(key)
                .and_then(|r| r.blocked_until)
                .filter(|until| *until > now)
                .map(|until| until - now)
        };
        let a = wait(&self.accounts, &account.to_lowercase());
        let b = wait(&self.addresses, address);
        match a.max(b) {
            Some(retry_after) => Err(Throttled { retry_after }),
            None => Ok(()),
        }
    }

    /// Records a failed attempt.
    pub fn failed(&self, account: &str, address: &str) {
        let now = Instant::now();
        let c = &self.config;
        let bump = |map: &Mutex<HashMap<String, Record>>, key: String, free: u32| {
            let mut m = map.lock().expect("throttle lock");
            m.retain(|_, r| now.duration_since(r.last) < c.forget_after);
            let r = m.entry(key).or_insert(Record {
                failures: 0,
                last: now,
                blocked_until: None,
            });
            r.failures += 1;
            r.last = now;
            if r.failures >= free {
                let exp = (r.failures - free).min(20);
                let delay = c.base_delay.saturating_mul(1 << exp).min(c.max_delay);
                r.blocked_until = Some(now + delay);
            }
        };
        bump(&self.accounts, account.to_lowercase(), c.free_per_account);
        bump(&self.addresses, address.to_string(), c.free_per_address);
    }

    /// Records a success: the account starts afresh (the address keeps its record).
    pub fn succeeded(&self, account: &str) {
        self.accounts
            .lock()
            .expect("throttle lock")
            .remove(&account.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> LoginThrottle {
        LoginThrottle::new(ThrottleConfig {
            free_per_account: 3,
            free_per_address: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            forget_after: Duration::from_secs(60),
        })
    }

    #[test]
    fn per_account() {
        let t = quick();
        for _ in 0..2 {
            t.check("alice", "1.1.1.1").unwrap();
            t.failed("alice", "1.1.1.1");
        }
        t.check("alice", "2.2.2.2").unwrap();
        t.failed("Alice", "2.2.2.2");
        let e = t.check("alice", "3.3.3.3").unwrap_err();
        assert!(e.retry_after > Duration::ZERO && e.retry_after <= Duration::from_millis(200));
        t.check("bob", "3.3.3.3").unwrap();
        std::thread::sleep(Duration::from_millis(210));
        t.check("alice", "3.3.3.3").unwrap();
        t.failed("alice", "3.3.3.3");
        let e = t.check("alice", "3.3.3.3").unwrap_err();
        assert!(
            e.retry_after > Duration::from_millis(200),
            "delay doubles: {e:?}"
        );
        t.succeeded("alice");
        t.check("alice", "4.4.4.4").unwrap();
    }

    #[test]
    fn per_address_across_accounts() {
        let t = quick();
        for i in 0..5 {
            t.failed(&format!("user{i}"), "9.9.9.9");
        }
        assert!(t.check("someone-new", "9.9.9.9").is_err());
        t.check("someone-new", "8.8.8.8").unwrap();
    }
}
