//! Response rate limiting (RRL), as NSD, Knot and BIND have it: UDP responses per second per
//! client prefix (IPv4 /24, IPv6 /56 by default), so the server cannot be used to flood a
//! spoofed victim, nor one client to take every answer. Over the rate, responses are dropped,
//! except every `slip`-th, which is sent truncated (TC=1) so that a real client behind the
//! prefix retries over TCP, where its address is proven.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::DnsSection;

/// Independent locks over the prefix table, so answer threads rarely contend.
const SHARDS: usize = 16;
/// A shard forgets idle prefixes once it tracks this many.
const PRUNE_AT: usize = 4096;

/// What to do with one UDP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: answer.
    Answer,
    /// Over the rate, and this one slips: answer truncated.
    Slip,
    /// Over the rate: send nothing.
    Drop,
}

/// Per-prefix response budgets.
#[derive(Debug)]
pub struct ResponseRateLimiter {
    /// Time one response costs; `None` when rate limiting is off.
    interval: Option<Duration>,
    /// Burst allowance: how far ahead of now a prefix's budget may run (one second's worth).
    tolerance: Duration,
    /// Every `slip`-th limited response is sent truncated (0: none, 1: all).
    slip: u32,
    /// Prefix lengths that make a client.
    v4_prefix: u8,
    v6_prefix: u8,
    shards: [Mutex<HashMap<IpAddr, Budget>>; SHARDS],
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Theoretical arrival time of the next response (GCRA).
    next: Instant,
    /// Responses limited so far, for slipping.
    limited: u32,
}

impl ResponseRateLimiter {
    /// A limiter for `dns.rrl_*`.
    pub fn new(dns: &DnsSection) -> Self {
        let per_second = dns.rrl_responses_per_second;
        let interval = (per_second > 0).then(|| Duration::from_secs(1) / per_second);
        Self {
            interval,
            tolerance: interval.map_or(Duration::ZERO, |i| i * per_second.saturating_sub(1)),
            slip: dns.rrl_slip,
            v4_prefix: dns.rrl_ipv4_prefix_len.min(32),
            v6_prefix: dns.rrl_ipv6_prefix_len.min(128),
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }

    /// Counts one response to `client` at `now` and says what to do with it.
    pub fn check(&self, client: IpAddr, now: Instant) -> Verdict {
        let Some(interval) = self.interval else {
            return Verdict::Answer;
        };
        let prefix = self.prefix(client);
        let shard = &self.shards[shard_of(&prefix)];
        let mut budgets = shard.lock().unwrap_or_else(|p| p.into_inner());
        if budgets.len() >= PRUNE_AT {
            budgets.retain(|_, budget| budget.next > now);
        }
        let budget = budgets.entry(prefix).or_insert(Budget {
            next: now,
            limited: 0,
        });
        let next = budget.next.max(now);
        if next - now <= self.tolerance {
            budget.next = next + interval;
            return Verdict::Answer;
        }
        budget.limited = budget.limited.wrapping_add(1);
        if self.slip > 0 && budget.limited.is_multiple_of(self.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    /// The client prefix `address` belongs to.
    fn prefix(&self, address: IpAddr) -> IpAddr {
        match address.to_canonical() {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.v4_prefix))
                    .unwrap_or(0);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.v6_prefix))
                    .unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
        }
    }
}

fn shard_of(prefix: &IpAddr) -> usize {
    let folded = match prefix {
        IpAddr::V4(v4) => u64::from(u32::from(*v4)),
        IpAddr::V6(v6) => {
            let bits = u128::from(*v6);
            (bits >> 64) as u64 ^ bits as u64
        }
    };
    // Fibonacci hashing spreads neighbouring prefixes over the shards.
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: u32, slip: u32) -> ResponseRateLimiter {
        ResponseRateLimiter::new(&DnsSection {
            rrl_responses_per_second: per_second,
            rrl_slip: slip,
            ..DnsSection::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_prefix_gets_its_rate_and_then_every_second_limited_answer_slips() {
        let rrl = limiter(10, 2);
        let now = Instant::now();
        let client = IpAddr::from([198, 51, 100, 7]);
        let verdicts: Vec<Verdict> = (0..14).map(|_| rrl.check(client, now)).collect();
        assert!(verdicts[..10].iter().all(|v| *v == Verdict::Answer));
        assert_eq!(
            verdicts[10..],
            [Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]
        );
        // A neighbour in the same /24 shares the budget; another /24 does not.
        assert_ne!(
            rrl.check(IpAddr::from([198, 51, 100, 200]), now),
            Verdict::Answer
        );
        assert_eq!(
            rrl.check(IpAddr::from([198, 51, 101, 7]), now),
            Verdict::Answer
        );
        // The budget refills with time.
        assert_eq!(
            rrl.check(client, now + Duration::from_millis(1100)),
            Verdict::Answer
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_clients_are_grouped_by_56_and_zero_turns_it_off() {
        let rrl = limiter(1, 0);
        let now = Instant::now();
        let a: IpAddr = "2001:db8:0:ab00::1".parse().expect("address");
        let same_56: IpAddr = "2001:db8:0:abff::9".parse().expect("address");
        let other: IpAddr = "2001:db8:0:ac00::1".parse().expect("address");
        assert_eq!(rrl.check(a, now), Verdict::Answer);
        assert_eq!(
            rrl.check(same_56, now),
            Verdict::Drop,
            "slip 0: never truncated"
        );
        assert_eq!(rrl.check(other, now), Verdict::Answer);
        let off = limiter(0, 2);
        assert!((0..10_000).all(|_| off.check(a, now) == Verdict::Answer));
    }
}
