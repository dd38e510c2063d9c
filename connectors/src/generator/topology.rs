//! The synthetic company network: who exists and who usually talks to whom.
//!
//! Everything here is arithmetic on host numbers and hashes of the seed, so the network
//! costs no memory per host and every partition sees the same one.
//!
//! - Clients: departments of [`DEPARTMENT_SIZE`] hosts, one /24 each in 10.0.0.0/16
//!   (10.0.1.0/24, 10.0.2.0/24, …; beyond 255 departments in 10.16.0.0 and up), and
//!   dual-stacked with an address in fd00:f10e:5c0e::/48 (ULA).
//! - Server tiers: web in 10.1.0.0/16, app in 10.2.0.0/16 (8080/8443/9000), db in
//!   10.3.0.0/16 (5432/3306/6379). A department uses a few web servers (its own and its
//!   neighbour's), a web server a few app servers, an app server a few databases.
//! - Hubs used by everyone: DNS 10.0.0.53 (udp/53), NTP 10.0.0.123 (udp/123), directory
//!   10.0.0.10 (kerberos, LDAP, SMB), mail 10.0.0.25, and a monitoring host 10.0.0.5.
//! - The internet: a few popular destinations everyone visits, a pool of others of which
//!   each client has its own usual few, and a few file-sharing sinks for large uploads.
//! - Scanners: a few clients that sweep one /24 over common ports.

use super::sample::mix;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) const DEPARTMENT_SIZE: u32 = 100;
/// Client addressing runs out beyond this many hosts.
pub(crate) const MAX_HOSTS: u32 = 6_000_000;
/// Per server tier; the third and fourth octets of a tier's /16 number them.
const MAX_SERVERS: u32 = 60_000;

pub(crate) const DNS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53));
pub(crate) const NTP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 123));
pub(crate) const DIRECTORY: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10));
pub(crate) const MAIL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 25));
pub(crate) const MONITOR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));

/// Sites nearly every client visits.
pub(crate) const POPULAR: [IpAddr; 8] = [
    IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)),
    IpAddr::V6(Ipv6Addr::new(0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111)),
    IpAddr::V4(Ipv4Addr::new(142, 250, 185, 78)),
    IpAddr::V4(Ipv4Addr::new(151, 101, 1, 69)),
    IpAddr::V6(Ipv6Addr::new(
        0x2a00, 0x1450, 0x4001, 0x82b, 0, 0, 0, 0x200e,
    )),
    IpAddr::V4(Ipv4Addr::new(104, 16, 132, 229)),
    IpAddr::V4(Ipv4Addr::new(13, 107, 42, 14)),
    IpAddr::V6(Ipv6Addr::new(0x2620, 0x1ec, 0xc11, 0, 0, 0, 0, 0x200)),
];

/// File-sharing and storage endpoints that receive the large uploads.
pub(crate) const BULK_SINKS: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(52, 217, 12, 34)),
    IpAddr::V4(Ipv4Addr::new(162, 125, 66, 18)),
    IpAddr::V4(Ipv4Addr::new(185, 199, 108, 153)),
];

/// Size of the pool that clients' usual destinations are drawn from.
const EXTERNAL_POOL: u32 = 256;
/// How many usual destinations each client has.
pub(crate) const USUAL_EXTERNALS: u32 = 9;
/// First octets of public IPv4 space the pool is drawn from (no private or reserved
/// ranges among them).
const PUBLIC_FIRST_OCTETS: [u8; 12] = [13, 23, 34, 35, 52, 54, 104, 142, 151, 157, 185, 199];

/// A tier of servers, numbered by the second octet of its /16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tier {
    Web = 1,
    App = 2,
    Db = 3,
}

/// A client that sweeps the hosts of one /24.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scanner {
    pub(crate) client: u32,
    /// The first three octets of the swept /24.
    pub(crate) subnet: [u8; 3],
}

#[derive(Debug)]
pub(crate) struct Topology {
    seed: u64,
    hosts: u32,
    web: u32,
    app: u32,
    db: u32,
    externals: Vec<IpAddr>,
    scanners: Vec<Scanner>,
}

impl Topology {
    pub(crate) fn new(seed: u64, hosts: u32) -> Topology {
        let hosts = hosts.clamp(1, MAX_HOSTS);
        let departments = hosts.div_ceil(DEPARTMENT_SIZE);
        let tier_size = |per_department: u32, min: u32| {
            departments
                .saturating_mul(per_department)
                .clamp(min, MAX_SERVERS)
        };
        let externals = (0..EXTERNAL_POOL)
            .map(|index| public_address(mix(seed ^ 0xe7e7_0000_0000 ^ u64::from(index))))
            .collect();
        let scanner_count = (hosts / 1000).clamp(1, 64);
        let scanners = (0..scanner_count)
            .map(|index| {
                let hash = mix(seed ^ 0x5ca0_0000_0000 ^ u64::from(index));
                let client = hash_below(hash, hosts);
                // Half sweep the app tier, half a client department.
                let subnet = if index % 2 == 1 {
                    [10, Tier::App as u8, 0]
                } else {
                    let department = hash_below(hash >> 32, departments.min(255));
                    [10, 0, octet(department + 1)]
                };
                Scanner { client, subnet }
            })
            .collect();
        Topology {
            seed,
            hosts,
            web: tier_size(2, 4),
            app: tier_size(2, 3),
            db: tier_size(1, 2),
            externals,
            scanners,
        }
    }

    pub(crate) fn hosts(&self) -> u32 {
        self.hosts
    }

    pub(crate) fn tier_size(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Web => self.web,
            Tier::App => self.app,
            Tier::Db => self.db,
        }
    }

    pub(crate) fn scanners(&self) -> &[Scanner] {
        &self.scanners
    }

    /// The IT staff who log in to servers: the first few hosts of department 0.
    pub(crate) fn admins(&self) -> u32 {
        self.hosts.min(4)
    }

    pub(crate) fn client_v4(&self, client: u32) -> IpAddr {
        let department = client / DEPARTMENT_SIZE;
        let host = octet(10 + client % DEPARTMENT_SIZE);
        let octets = match department.checked_sub(255) {
            None => [10, 0, octet(department + 1), host],
            // Beyond 10.0.0.0/16, departments continue from 10.16.0.0, clear of the
            // server tiers; MAX_HOSTS keeps the second octet within range.
            Some(beyond) => [10, octet(16 + beyond / 256), octet(beyond % 256), host],
        };
        IpAddr::V4(Ipv4Addr::from(octets))
    }

    pub(crate) fn client_v6(&self, client: u32) -> IpAddr {
        let department = u16::try_from(client / DEPARTMENT_SIZE).unwrap_or(u16::MAX);
        let host = u16::try_from(10 + client % DEPARTMENT_SIZE).unwrap_or(10);
        IpAddr::V6(Ipv6Addr::new(
            0xfd00, 0xf10e, 0x5c0e, department, 0, 0, 0, host,
        ))
    }

    /// The client's address of the same family as `peer`.
    pub(crate) fn client_towards(&self, client: u32, peer: IpAddr) -> IpAddr {
        match peer {
            IpAddr::V4(_) => self.client_v4(client),
            IpAddr::V6(_) => self.client_v6(client),
        }
    }

    pub(crate) fn server(&self, tier: Tier, index: u32) -> IpAddr {
        let index = index % self.tier_size(tier).max(1);
        IpAddr::V4(Ipv4Addr::new(
            10,
            tier as u8,
            octet(index / 250),
            octet(1 + index % 250),
        ))
    }

    /// The `k`th web server that department `department` uses: two of its own and two
    /// of its neighbour's.
    pub(crate) fn department_web(&self, department: u32, k: u32) -> u32 {
        department.wrapping_mul(2).wrapping_add(k) % self.web.max(1)
    }

    /// The `k`th app server that web server `web` calls.
    pub(crate) fn web_app(&self, web: u32, k: u32) -> u32 {
        web.wrapping_add(k) % self.app.max(1)
    }

    /// The `k`th database that app server `app` queries.
    pub(crate) fn app_db(&self, app: u32, k: u32) -> u32 {
        (app / 2).wrapping_add(k) % self.db.max(1)
    }

    /// The port a server listens on.
    pub(crate) fn service_port(tier: Tier, index: u32) -> u16 {
        let ports = match tier {
            Tier::Web => return 443,
            Tier::App => [8080, 8443, 9000],
            Tier::Db => [5432, 3306, 6379],
        };
        ports[(index % 3) as usize]
    }

    /// The `slot`th of the client's usual internet destinations.
    pub(crate) fn usual_external(&self, client: u32, slot: u32) -> IpAddr {
        let hash = mix(self.seed ^ (u64::from(client) << 20) ^ u64::from(slot));
        let index = usize::try_from(hash_below(hash, EXTERNAL_POOL)).unwrap_or(0);
        self.externals.get(index).copied().unwrap_or(POPULAR[0])
    }
}

/// An address octet; callers keep `n` within range.
fn octet(n: u32) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// `hash` reduced to `0..n` (0 when `n` is 0).
fn hash_below(hash: u64, n: u32) -> u32 {
    u32::try_from(hash % u64::from(n.max(1))).unwrap_or(0)
}

/// A public address derived from `hash`: about one in five IPv6 (in 2600::/12 or 2a00::/12),
/// the rest IPv4 in well-known provider ranges.
fn public_address(hash: u64) -> IpAddr {
    let [a, b, c, d, e, f, g, h] = hash.to_be_bytes();
    // The top four bits decide the family: 3 in 16 IPv6.
    if hash >> 60 < 3 {
        let prefix = if a & 1 == 0 { 0x2600 } else { 0x2a00 };
        IpAddr::V6(Ipv6Addr::new(
            prefix | u16::from(b & 0x0f),
            u16::from_be_bytes([c, d]),
            u16::from_be_bytes([e, f]),
            0,
            0,
            0,
            0,
            u16::from_be_bytes([g, h]) | 1,
        ))
    } else {
        let first = PUBLIC_FIRST_OCTETS
            .get(usize::from(a) % PUBLIC_FIRST_OCTETS.len())
            .copied()
            .unwrap_or(93);
        IpAddr::V4(Ipv4Addr::new(first, b, c, 1 + d % 254))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_private_and_distinct() {
        let topology = Topology::new(1, MAX_HOSTS);
        assert_eq!(topology.client_v4(0).to_string(), "10.0.1.10");
        assert_eq!(topology.client_v4(199).to_string(), "10.0.2.109");
        assert_eq!(topology.client_v4(25_499).to_string(), "10.0.255.109");
        assert_eq!(topology.client_v4(25_500).to_string(), "10.16.0.10");
        assert_eq!(
            topology.client_v4(MAX_HOSTS - 1).to_string(),
            "10.249.96.109"
        );
        assert_eq!(topology.client_v6(123).to_string(), "fd00:f10e:5c0e:1::21");
        let mut seen = std::collections::BTreeSet::new();
        for client in (0..MAX_HOSTS).step_by(97) {
            assert!(seen.insert(topology.client_v4(client)));
        }
    }

    #[test]
    fn servers_live_in_their_tier() {
        let topology = Topology::new(1, 2_000);
        assert_eq!(topology.server(Tier::Web, 0).to_string(), "10.1.0.1");
        assert_eq!(topology.server(Tier::Db, 3).to_string(), "10.3.0.4");
        assert_eq!(topology.tier_size(Tier::Web), 40);
        assert_eq!(Topology::service_port(Tier::Db, 4), 3306);
    }

    #[test]
    fn the_pool_is_public_and_seeded() {
        let a = Topology::new(1, 100);
        let b = Topology::new(2, 100);
        assert_ne!(a.externals, b.externals);
        for ip in &a.externals {
            match ip {
                IpAddr::V4(v4) => assert!(!v4.is_private() && !v4.is_loopback(), "{ip}"),
                IpAddr::V6(v6) => assert_eq!(v6.segments()[0] & 0xe000, 0x2000, "{ip}"),
            }
        }
        assert!(a.externals.iter().any(IpAddr::is_ipv6));
    }
}
