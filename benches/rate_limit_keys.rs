//! Memory of the RateLimiter under a flood of distinct client addresses: one million
//! IPv6 hosts of 2001:db8::/32 (each its own /64, so each its own key) send one message, then the keys fall idle and the clean-up drops them.
//! Prints the keys tracked and the process's RSS at each step (not a timing benchmark).
//!
//! `cargo bench --bench rate_limit_keys`

use std::time::{Duration, Instant};

use hermod_actors::policy::rate_limiter::{RateLimiter, RateLimits};
use hermod_actors::protocol::check::{CheckStage, Facts};

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

/// Host 1 of its own /64 in 2001:db8::/32: flood and `i` (below 2^20) in the two segments
/// after the documentation prefix.
fn host(flood: u16, i: u32) -> std::net::IpAddr {
    let segment = flood * 16 + (i >> 16) as u16;
    std::net::IpAddr::V6(std::net::Ipv6Addr::new(
        0x2001, 0xdb8, segment, i as u16, 0, 0, 0, 1,
    ))
}

fn main() {
    const KEYS: u32 = 1_000_000;
    let window = Duration::from_secs(2);
    let limiter = RateLimiter::new(&RateLimits {
        connections_per_ip: 0,
        messages_per_ip: 100,
        messages_per_user: 0,
        recipients_per_user: 0,
        messages_per_sender_domain: 0,
        window,
        exempt: Vec::new(),
        cleanup_interval: Duration::from_secs(60),
        fail_open: false,
    });
    let base = rss_mib();
    let started = Instant::now();
    let mut facts = Facts::connect("2001:db8::1".parse().unwrap(), false);
    facts.stage = CheckStage::Mail;
    facts.sender = Some("a@b.test".into());
    for i in 0..KEYS {
        facts.client_ip = host(0, i);
        limiter.decide(&facts);
    }
    let elapsed = started.elapsed();
    let full = rss_mib();
    println!(
        "rate_limit_keys: {} keys after {KEYS} distinct addresses in {:.2} s ({:.0} ns/check); RSS {base:.1} -> {full:.1} MiB (+{:.0} bytes/key)",
        limiter.tracked_keys(),
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / f64::from(KEYS),
        (full - base) * 1024.0 * 1024.0 / f64::from(KEYS)
    );
    std::thread::sleep(window + Duration::from_millis(200));
    limiter.clean_up();
    let after = rss_mib();
    println!(
        "rate_limit_keys: {} keys after the clean-up; RSS {after:.1} MiB (the allocator keeps some pages for reuse)",
        limiter.tracked_keys()
    );
    // A second flood reuses that memory rather than adding to it.
    for i in 0..KEYS {
        facts.client_ip = host(1, i);
        limiter.decide(&facts);
    }
    println!(
        "rate_limit_keys: {} keys after a second flood of {KEYS}; RSS {:.1} MiB",
        limiter.tracked_keys(),
        rss_mib()
    );
}
