//! Which replica takes a request: power of two choices on outstanding requests among the
//! replicas that may take traffic, with passive ejection and a circuit breaker per replica.
//!
//! A replica's breaker is *closed* while it answers. After `failures_to_eject` failures in a
//! row it *opens*: the replica is ejected for `base_ejection × 2^(ejections-1)` (capped at
//! `max_ejection`). When that time has passed the breaker is *half-open*: the next request
//! (or an active probe) is the probe; success closes it, failure opens it again for twice as
//! long. At most `max_ejected_share` of a route's replicas are ejected at once: past that, a
//! failing replica stays in rotation (ejecting everyone would refuse every request).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How replicas are ejected and let back in.
#[derive(Clone, Debug)]
pub struct EjectionPolicy {
    pub failures_to_eject: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    /// Largest share of a route's replicas ejected at once (0.0 to 1.0).
    pub max_ejected_share: f64,
}

impl Default for EjectionPolicy {
    fn default() -> Self {
        EjectionPolicy {
            failures_to_eject: 3,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(60),
            max_ejected_share: 0.5,
        }
    }
}

/// The breaker of one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breaker {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Health {
    breaker: Breaker,
    /// Failures in a row.
    failures: u32,
    /// Ejections since the replica last recovered; sets the next ejection's length.
    ejections: u32,
}

/// One upstream replica of a route.
#[derive(Debug)]
pub struct Replica {
    /// Base URL, `http://host:port`, without a trailing slash.
    pub url: String,
    /// A stable name for metrics and logs (the lease, or the URL).
    pub name: String,
    outstanding: AtomicU32,
    health: Mutex<Health>,
    pub requests: AtomicU64,
    pub failures: AtomicU64,
}

impl Replica {
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Replica {
            url: url.into().trim_end_matches('/').to_string(),
            name: name.into(),
            outstanding: AtomicU32::new(0),
            health: Mutex::new(Health { breaker: Breaker::Closed, failures: 0, ejections: 0 }),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    fn health(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// The breaker as of `now` (an open breaker whose time passed reads half-open).
    pub fn breaker(&self, now: Instant) -> Breaker {
        let mut h = self.health();
        if let Breaker::Open { until } = h.breaker
            && now >= until
        {
            h.breaker = Breaker::HalfOpen { probing: false };
        }
        h.breaker
    }

    pub fn is_ejected(&self, now: Instant) -> bool {
        matches!(self.breaker(now), Breaker::Open { .. })
    }
}

/// A request's hold on a replica: counts it outstanding until dropped.
#[derive(Debug)]
pub struct Lease {
    pub replica: Arc<Replica>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.replica.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The replicas of one route.
#[derive(Debug)]
pub struct Pool {
    replicas: std::sync::RwLock<Vec<Arc<Replica>>>,
    policy: EjectionPolicy,
}

impl Pool {
    pub fn new(replicas: Vec<Arc<Replica>>, policy: EjectionPolicy) -> Self {
        Pool { replicas: std::sync::RwLock::new(replicas), policy }
    }

    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the replica list (discovery), keeping the state of replicas still present.
    pub fn set_replicas(&self, urls: &[(String, String)]) {
        let mut list = self.replicas.write().unwrap_or_else(|e| e.into_inner());
        let mut next = Vec::with_capacity(urls.len());
        for (name, url) in urls {
            let url = url.trim_end_matches('/');
            match list.iter().find(|r| r.url == url) {
                Some(r) => next.push(r.clone()),
                None => next.push(Arc::new(Replica::new(name.clone(), url))),
            }
        }
        *list = next;
    }

    /// Picks a replica for a request, avoiding `tried`: two at random among those that may
    /// take traffic, the one with fewer requests outstanding. A half-open replica takes one
    /// probe at a time.
    pub fn pick(&self, tried: &[Arc<Replica>]) -> Option<Lease> {
        let now = Instant::now();
        let all = self.replicas();
        let usable: Vec<&Arc<Replica>> = all
            .iter()
            .filter(|r| !tried.iter().any(|t| Arc::ptr_eq(t, r)))
            .filter(|r| match r.breaker(now) {
                Breaker::Closed => true,
                Breaker::HalfOpen { probing } => !probing,
                Breaker::Open { .. } => false,
            })
            .collect();
        let chosen = match usable.len() {
            0 => return None,
            1 => usable[0],
            n => {
                let a = rand::random::<usize>() % n;
                let mut b = rand::random::<usize>() % (n - 1);
                if b >= a {
                    b += 1;
                }
                if usable[b].outstanding() < usable[a].outstanding() {
                    usable[b]
                } else {
                    usable[a]
                }
            }
        };
        {
            let mut h = chosen.health();
            if let Breaker::HalfOpen { probing: false } = h.breaker {
                h.breaker = Breaker::HalfOpen { probing: true };
            }
        }
        chosen.outstanding.fetch_add(1, Ordering::Relaxed);
        chosen.requests.fetch_add(1, Ordering::Relaxed);
        Some(Lease { replica: chosen.clone() })
    }

    /// The replica answered: its breaker closes and its ejection count resets.
    pub fn success(&self, replica: &Replica) {
        let mut h = replica.health();
        h.failures = 0;
        h.ejections = 0;
        h.breaker = Breaker::Closed;
    }

    /// The replica failed a request or a probe: after enough failures in a row (at once when
    /// it was probing) it is ejected, unless that would eject more than the allowed share.
    pub fn failure(&self, replica: &Replica) {
        replica.failures.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let ejected_others = self
            .replicas()
            .iter()
            .filter(|r| !std::ptr::eq(r.as_ref(), replica) && r.is_ejected(now))
            .count();
        let total = self.replicas().len().max(1);
        let allowed = ((total as f64) * self.policy.max_ejected_share).floor() as usize;
        let mut h = replica.health();
        h.failures = h.failures.saturating_add(1);
        let probing = matches!(h.breaker, Breaker::HalfOpen { .. });
        if !probing && h.failures < self.policy.failures_to_eject {
            return;
        }
        if ejected_others + 1 > allowed.max(if probing { total } else { 0 }) {
            // Ejecting it would leave too few replicas: it stays in rotation.
            if probing {
                h.breaker = Breaker::Closed;
            }
            return;
        }
        h.ejections = h.ejections.saturating_add(1);
        let factor = 1u32 << (h.ejections - 1).min(16);
        let length = self.policy.base_ejection.saturating_mul(factor).min(self.policy.max_ejection);
        h.breaker = Breaker::Open { until: now + length };
        tracing::warn!(target: "gateway", replica = %replica.name, ejection_ms = length.as_millis() as u64, "replica ejected");
    }

    /// An active probe's verdict on a replica that is not taking a request.
    pub fn probed(&self, replica: &Replica, ok: bool) {
        if ok {
            if replica.breaker(Instant::now()) != Breaker::Closed {
                tracing::info!(target: "gateway", replica = %replica.name, "replica re-admitted");
            }
            self.success(replica);
        } else {
            self.failure(replica);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, policy: EjectionPolicy) -> Pool {
        let replicas = (0..n)
            .map(|i| Arc::new(Replica::new(format!("r{i}"), format!("http://r{i}"))))
            .collect();
        Pool::new(replicas, policy)
    }

    #[test]
    fn two_choices_prefer_the_less_loaded() {
        let p = pool(2, EjectionPolicy::default());
        let busy: Vec<Lease> = (0..5).map(|_| p.pick(&[]).expect("pick")).collect();
        // With two replicas both are always the candidates: the next pick goes to the one with
        // fewer outstanding.
        let counts: Vec<u32> = p.replicas().iter().map(|r| r.outstanding()).collect();
        let next = p.pick(&[]).expect("pick");
        let min = *counts.iter().min().unwrap_or(&0);
        assert_eq!(next.replica.outstanding(), min + 1);
        drop(busy);
    }

    #[test]
    fn failures_eject_then_a_probe_readmits_with_growing_ejections() {
        let policy = EjectionPolicy {
            failures_to_eject: 2,
            base_ejection: Duration::from_millis(40),
            max_ejection: Duration::from_secs(1),
            max_ejected_share: 0.5,
        };
        let p = pool(2, policy);
        let r0 = p.replicas()[0].clone();
        p.failure(&r0);
        assert!(!r0.is_ejected(Instant::now()), "one failure is not enough");
        p.failure(&r0);
        assert!(r0.is_ejected(Instant::now()));
        // Ejected: every pick goes to the other one.
        for _ in 0..20 {
            assert!(!Arc::ptr_eq(&p.pick(&[]).expect("pick").replica, &r0));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(r0.breaker(Instant::now()), Breaker::HalfOpen { probing: false });
        // The probe fails: ejected again, for twice as long.
        let probe = loop {
            let l = p.pick(&[]).expect("pick");
            if Arc::ptr_eq(&l.replica, &r0) {
                break l;
            }
        };
        p.failure(&probe.replica);
        let Breaker::Open { until } = r0.breaker(Instant::now()) else { panic!("reopened") };
        assert!(until > Instant::now() + Duration::from_millis(60));
        // An active probe that succeeds re-admits it at once.
        p.probed(&r0, true);
        assert_eq!(r0.breaker(Instant::now()), Breaker::Closed);
    }

    #[test]
    fn never_more_than_the_allowed_share_is_ejected() {
        let p = pool(2, EjectionPolicy { failures_to_eject: 1, ..EjectionPolicy::default() });
        let (a, b) = (p.replicas()[0].clone(), p.replicas()[1].clone());
        p.failure(&a);
        p.failure(&b);
        let now = Instant::now();
        assert!(a.is_ejected(now));
        assert!(!b.is_ejected(now), "half of two replicas may be ejected, not both");
        assert!(p.pick(&[]).is_some());
    }
}
