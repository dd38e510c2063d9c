//! The generator: deterministic, partitioned as promised, on schedule, and shaped like
//! the network it advertises.

// A panic is how a test reports a failure.
#![allow(clippy::unwrap_used)]

use flowsight_connectors::{
    DeadLetter, EventPartition, GeneratorConfig, GeneratorPartition, Pace, PollStatus,
};
use flowsight_events::{EdgeKey, Event, Proto, Status};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

fn fast(count: u64) -> GeneratorConfig {
    GeneratorConfig {
        pace: Pace::Fast,
        count: Some(count),
        ..GeneratorConfig::default()
    }
}

fn partition(config: &GeneratorConfig, p: u32) -> Vec<Event> {
    GeneratorPartition::new(config, p).collect()
}

fn all_partitions(config: &GeneratorConfig) -> Vec<Event> {
    (0..config.partitions)
        .flat_map(|p| partition(config, p))
        .collect()
}

/// The scheduled time of partition `p`'s `k`th event, computed independently.
fn scheduled(config: &GeneratorConfig, p: u32, k: u64) -> u64 {
    let global = k * u64::from(config.partitions) + u64::from(p);
    config.start_ms + global * 1000 / config.rate
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80
        }
    }
}

#[test]
fn the_same_config_gives_the_same_events() {
    let config = fast(20_000);
    assert_eq!(all_partitions(&config), all_partitions(&config));
    let other_seed = GeneratorConfig {
        seed: 2,
        ..config.clone()
    };
    assert_ne!(partition(&config, 0), partition(&other_seed, 0));
    assert_ne!(partition(&config, 0)[..100], partition(&config, 1)[..100]);
}

#[test]
fn a_partition_does_not_depend_on_how_it_is_polled() {
    let config = fast(4_003);
    let alone = partition(&config, 1);
    // Polled in uneven batches, interleaved with the other partitions.
    let mut partitions: Vec<GeneratorPartition> = (0..4)
        .map(|p| GeneratorPartition::new(&config, p))
        .collect();
    let mut polled: Vec<Vec<Event>> = vec![Vec::new(); 4];
    let mut dead: Vec<DeadLetter> = Vec::new();
    let mut finished = BTreeSet::new();
    let mut batch = 1;
    while finished.len() < 4 {
        for (p, partition) in partitions.iter_mut().enumerate() {
            batch = batch % 97 + 13;
            if partition.poll(batch, &mut polled[p], &mut dead) == PollStatus::Finished {
                finished.insert(p);
            }
        }
    }
    assert!(dead.is_empty());
    assert_eq!(polled[1], alone);
    assert_eq!(partitions[1].next_offset(), alone.len() as u64);
}

#[test]
fn count_is_split_as_evenly_as_possible() {
    let config = GeneratorConfig {
        partitions: 4,
        ..fast(10)
    };
    let sizes: Vec<usize> = (0..4).map(|p| partition(&config, p).len()).collect();
    assert_eq!(sizes, [3, 3, 2, 2]);
    let config = GeneratorConfig {
        partitions: 3,
        ..fast(30_001)
    };
    let sizes: Vec<usize> = (0..3).map(|p| partition(&config, p).len()).collect();
    assert_eq!(sizes, [10_001, 10_000, 10_000]);
    assert!(
        partition(&config, 3).is_empty(),
        "a partition the config lacks is empty"
    );
}

#[test]
fn partitions_together_produce_the_rate() {
    let config = GeneratorConfig {
        rate: 1_000,
        disorder_ms: 0,
        ..fast(10_000)
    };
    for p in 0..config.partitions {
        for (k, event) in partition(&config, p).iter().enumerate() {
            assert_eq!(
                event.ts,
                scheduled(&config, p, k as u64),
                "partition {p} event {k}"
            );
        }
    }
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    for event in all_partitions(&config) {
        *per_second
            .entry((event.ts - config.start_ms) / 1000)
            .or_default() += 1;
    }
    assert_eq!(per_second.len(), 10);
    assert!(per_second.values().all(|&n| n == 1_000), "{per_second:?}");
}

#[test]
fn disorder_is_bounded() {
    let config = GeneratorConfig {
        disorder_ms: 2_000,
        ..fast(40_000)
    };
    let mut max_lag = 0;
    let mut out_of_order = 0;
    for p in 0..config.partitions {
        let events = partition(&config, p);
        for (k, event) in events.iter().enumerate() {
            let due = scheduled(&config, p, k as u64);
            assert!(
                event.ts <= due && due - event.ts <= 2_000,
                "lag {}",
                due - event.ts
            );
            max_lag = max_lag.max(due - event.ts);
        }
        out_of_order += events.windows(2).filter(|w| w[1].ts < w[0].ts).count();
    }
    assert!(max_lag > 1_900, "lags should span the bound, max {max_lag}");
    assert!(out_of_order > 1_000, "only {out_of_order} out of order");
    // Never below zero.
    let early = GeneratorConfig {
        start_ms: 0,
        ..config
    };
    assert!(partition(&early, 0).iter().take(10).any(|e| e.ts == 0));
}

#[test]
fn the_default_network_has_the_advertised_structure() {
    let config = fast(200_000);
    let events = all_partitions(&config);
    assert_eq!(events.len(), 200_000);

    let dns: IpAddr = "10.0.0.53".parse().unwrap();
    let ntp: IpAddr = "10.0.0.123".parse().unwrap();
    let sources_of = |hub: IpAddr, port: u16| -> BTreeSet<IpAddr> {
        events
            .iter()
            .filter(|e| e.dst_ip == hub && e.dst_port == port && e.proto == Proto::Udp)
            .map(|e| e.src_ip)
            .collect()
    };
    assert!(sources_of(dns, 53).len() > 1_500, "DNS is a hub");
    assert!(sources_of(ntp, 123).len() > 1_000, "NTP is a hub");

    let external: Vec<&Event> = events.iter().filter(|e| !is_private(e.dst_ip)).collect();
    assert!(external.len() > 10_000, "{} external", external.len());
    assert!(external
        .iter()
        .any(|e| e.dst_ip == "93.184.216.34".parse::<IpAddr>().unwrap()));
    assert!(external
        .iter()
        .any(|e| e.dst_ip.is_ipv6() && e.src_ip.is_ipv6()));
    assert!(
        events
            .iter()
            .all(|e| e.src_ip.is_ipv6() == e.dst_ip.is_ipv6()),
        "sources match the family"
    );
    assert!(
        events.iter().all(|e| is_private(e.src_ip)),
        "all traffic starts inside"
    );

    let uploads = external
        .iter()
        .filter(|e| e.bytes_out >= 10_000_000)
        .count();
    assert!(uploads >= 1, "some large uploads");

    for tier in ["10.1.", "10.2.", "10.3."] {
        assert!(
            events
                .iter()
                .any(|e| e.dst_ip.to_string().starts_with(tier)),
            "tier {tier}"
        );
    }
    for port in [5432, 3306, 6379] {
        assert!(events
            .iter()
            .any(|e| e.dst_port == port && e.dst_ip.to_string().starts_with("10.3.")));
    }

    // Scanners: one source probing many (dst_ip, dst_port) pairs, mostly failing.
    #[derive(Default)]
    struct Probes {
        targets: BTreeSet<(IpAddr, u16)>,
        total: usize,
        failed: usize,
    }
    let mut probes: BTreeMap<IpAddr, Probes> = BTreeMap::new();
    for e in &events {
        let entry = probes.entry(e.src_ip).or_default();
        entry.targets.insert((e.dst_ip, e.dst_port));
        entry.total += 1;
        entry.failed += usize::from(matches!(e.status, Status::Failed | Status::Rejected));
    }
    let scanners: Vec<_> = probes
        .values()
        .filter(|p| p.targets.len() > 500 && p.failed * 10 > p.total * 8)
        .collect();
    assert!(!scanners.is_empty(), "no scanner found");

    let established = events
        .iter()
        .filter(|e| e.status == Status::Established)
        .count();
    assert!(established * 100 > events.len() * 90, "mostly established");
    for status in Status::ALL {
        assert!(events.iter().any(|e| e.status == status), "{status} occurs");
    }
    for e in &events {
        if e.proto != Proto::Icmp {
            assert!(
                (32768..=60999).contains(&e.src_port),
                "ephemeral source port {}",
                e.src_port
            );
        }
        assert!(e.packets > 0);
    }
    assert!(events.iter().any(|e| e.proto == Proto::Icmp));
}

#[test]
fn more_hosts_give_more_edges() {
    let edges = |hosts: u32| -> usize {
        let config = GeneratorConfig {
            hosts,
            ..fast(100_000)
        };
        all_partitions(&config)
            .iter()
            .map(Event::edge_key)
            .collect::<BTreeSet<EdgeKey>>()
            .len()
    };
    let small = edges(200);
    let large = edges(20_000);
    assert!(
        large > small * 3,
        "{small} edges with 200 hosts, {large} with 20000"
    );
}

// The sizing claim (about 100k distinct edges over 10M events with the defaults) is
// measured by the load harness: `cargo run --release -p flowsight-benches --bin pipeline -- --count-edges`.
