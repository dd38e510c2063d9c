//! What one synthetic connection looks like: which kind of traffic it is (clients browsing
//! internal web apps, tiers calling each other, DNS, the internet, admins, scanners, large
//! uploads), and plausible ports, sizes, durations and outcomes for each kind.

use super::sample::{chance, ephemeral_port, log_uniform, pick, skewed};
use super::topology::{
    Tier, Topology, BULK_SINKS, DEPARTMENT_SIZE, DIRECTORY, DNS, MAIL, MONITOR, NTP, POPULAR,
    USUAL_EXTERNALS,
};
use flowsight_events::{Event, Millis, Proto, Status};
use rand::Rng;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ClientWeb,
    WebApp,
    AppDb,
    Dns,
    Ntp,
    Directory,
    Mail,
    External,
    Admin,
    Ping,
    Scan,
    Bulk,
}

/// The traffic mix, in events per 10,000.
const KINDS: [(Kind, u32); 12] = [
    (Kind::ClientWeb, 3600),
    (Kind::WebApp, 1500),
    (Kind::AppDb, 900),
    (Kind::Dns, 1500),
    (Kind::Ntp, 150),
    (Kind::Directory, 500),
    (Kind::Mail, 250),
    (Kind::External, 1318),
    (Kind::Admin, 100),
    (Kind::Ping, 100),
    (Kind::Scan, 80),
    (Kind::Bulk, 2),
];

/// Outcomes, per mille.
type Outcomes = [(Status, u32); 4];
const WEB_OUTCOMES: Outcomes = [
    (Status::Established, 965),
    (Status::Reset, 20),
    (Status::Failed, 10),
    (Status::Rejected, 5),
];
const INTERNAL_OUTCOMES: Outcomes = [
    (Status::Established, 985),
    (Status::Reset, 10),
    (Status::Failed, 4),
    (Status::Rejected, 1),
];
const UDP_OUTCOMES: Outcomes = [
    (Status::Established, 985),
    (Status::Failed, 15),
    (Status::Reset, 0),
    (Status::Rejected, 0),
];
const EXTERNAL_OUTCOMES: Outcomes = [
    (Status::Established, 960),
    (Status::Reset, 20),
    (Status::Failed, 12),
    (Status::Other, 8),
];
/// Most probes hit no host or a closed port.
const SCAN_OUTCOMES: Outcomes = [
    (Status::Failed, 550),
    (Status::Rejected, 400),
    (Status::Reset, 30),
    (Status::Established, 20),
];
const ALWAYS_ESTABLISHED: Outcomes = [
    (Status::Established, 1),
    (Status::Failed, 0),
    (Status::Reset, 0),
    (Status::Rejected, 0),
];

/// Ranges of an established connection's sizes (bytes each way) and duration (ms).
#[derive(Clone, Copy)]
struct Profile {
    bytes_out: (u64, u64),
    bytes_in: (u64, u64),
    duration_ms: (u64, u64),
}

const fn profile(bytes_out: (u64, u64), bytes_in: (u64, u64), duration_ms: (u64, u64)) -> Profile {
    Profile {
        bytes_out,
        bytes_in,
        duration_ms,
    }
}

const WEB: Profile = profile((300, 8_000), (1_000, 2_000_000), (5, 5_000));
const APP: Profile = profile((200, 40_000), (300, 500_000), (2, 2_000));
const DB: Profile = profile((80, 8_000), (100, 4_000_000), (1, 1_500));
const DNS_QUERY: Profile = profile((40, 90), (60, 400), (1, 60));
const NTP_SYNC: Profile = profile((48, 48), (48, 48), (1, 40));
const DIRECTORY_CALL: Profile = profile((150, 4_000), (150, 12_000), (2, 800));
const MAIL_SESSION: Profile = profile((300, 200_000), (500, 2_000_000), (50, 60_000));
const INTERNET: Profile = profile((400, 60_000), (1_000, 8_000_000), (20, 120_000));
const ADMIN_SESSION: Profile =
    profile((2_000, 2_000_000), (3_000, 20_000_000), (10_000, 3_600_000));
const ECHO: Profile = profile((64, 1_500), (64, 1_500), (1, 50));
const PROBE: Profile = profile((1, 60), (1, 60), (1, 5));
/// Tens of megabytes out: backups, or exfiltration.
const UPLOAD: Profile = profile(
    (10_000_000, 80_000_000),
    (5_000, 300_000),
    (20_000, 900_000),
);

/// Ports a scanner tries.
const SCAN_PORTS: [u16; 32] = [
    21, 22, 23, 25, 53, 80, 110, 135, 139, 143, 161, 389, 443, 445, 636, 993, 995, 1433, 1521,
    2049, 3306, 3389, 5000, 5432, 5900, 6379, 8080, 8443, 9000, 9200, 11211, 27017,
];

/// The addressing of one connection.
struct Endpoints {
    src_ip: IpAddr,
    src_port: u16,
    dst_ip: IpAddr,
    dst_port: u16,
    proto: Proto,
}

impl Endpoints {
    fn tcp(rng: &mut impl Rng, src_ip: IpAddr, dst_ip: IpAddr, dst_port: u16) -> Endpoints {
        Endpoints {
            src_ip,
            src_port: ephemeral_port(rng),
            dst_ip,
            dst_port,
            proto: Proto::Tcp,
        }
    }

    fn udp(rng: &mut impl Rng, src_ip: IpAddr, dst_ip: IpAddr, dst_port: u16) -> Endpoints {
        Endpoints {
            proto: Proto::Udp,
            ..Endpoints::tcp(rng, src_ip, dst_ip, dst_port)
        }
    }
}

/// One synthetic connection at event time `ts`.
pub(crate) fn connection(rng: &mut impl Rng, topology: &Topology, ts: Millis) -> Event {
    let (endpoints, outcomes, profile) = match pick(rng, &KINDS) {
        Kind::ClientWeb => {
            let client = rng.gen_range(0..topology.hosts());
            let department = client / DEPARTMENT_SIZE;
            let web = topology.department_web(department, skewed(rng, 4));
            let port = pick(rng, &[(443, 85), (80, 15)]);
            let endpoints = Endpoints::tcp(
                rng,
                topology.client_v4(client),
                topology.server(Tier::Web, web),
                port,
            );
            (endpoints, WEB_OUTCOMES, WEB)
        }
        Kind::WebApp => {
            let web = rng.gen_range(0..topology.tier_size(Tier::Web));
            let app = topology.web_app(web, skewed(rng, 3));
            let endpoints = Endpoints::tcp(
                rng,
                topology.server(Tier::Web, web),
                topology.server(Tier::App, app),
                Topology::service_port(Tier::App, app),
            );
            (endpoints, INTERNAL_OUTCOMES, APP)
        }
        Kind::AppDb => {
            let app = rng.gen_range(0..topology.tier_size(Tier::App));
            let db = topology.app_db(app, skewed(rng, 2));
            let endpoints = Endpoints::tcp(
                rng,
                topology.server(Tier::App, app),
                topology.server(Tier::Db, db),
                Topology::service_port(Tier::Db, db),
            );
            (endpoints, INTERNAL_OUTCOMES, DB)
        }
        Kind::Dns => {
            // Servers resolve names too, but mostly it is the clients.
            let src = if chance(rng, 900) {
                let client = rng.gen_range(0..topology.hosts());
                topology.client_v4(client)
            } else {
                any_server(rng, topology)
            };
            (Endpoints::udp(rng, src, DNS, 53), UDP_OUTCOMES, DNS_QUERY)
        }
        Kind::Ntp => {
            let src = if chance(rng, 700) {
                let client = rng.gen_range(0..topology.hosts());
                topology.client_v4(client)
            } else {
                any_server(rng, topology)
            };
            (Endpoints::udp(rng, src, NTP, 123), UDP_OUTCOMES, NTP_SYNC)
        }
        Kind::Directory => {
            let client = rng.gen_range(0..topology.hosts());
            let port = pick(rng, &[(88, 40), (389, 35), (445, 15), (636, 10)]);
            let endpoints = Endpoints::tcp(rng, topology.client_v4(client), DIRECTORY, port);
            (endpoints, INTERNAL_OUTCOMES, DIRECTORY_CALL)
        }
        Kind::Mail => {
            let client = rng.gen_range(0..topology.hosts());
            let port = pick(rng, &[(993, 70), (587, 30)]);
            let endpoints = Endpoints::tcp(rng, topology.client_v4(client), MAIL, port);
            (endpoints, INTERNAL_OUTCOMES, MAIL_SESSION)
        }
        Kind::External => {
            let client = rng.gen_range(0..topology.hosts());
            let dst = if chance(rng, 250) {
                POPULAR[skewed(rng, 8) as usize % POPULAR.len()]
            } else {
                topology.usual_external(client, skewed(rng, USUAL_EXTERNALS))
            };
            let port = match dst {
                IpAddr::V4(_) => pick(rng, &[(443, 92), (80, 8)]),
                IpAddr::V6(_) => 443,
            };
            let src = topology.client_towards(client, dst);
            (
                Endpoints::tcp(rng, src, dst, port),
                EXTERNAL_OUTCOMES,
                INTERNET,
            )
        }
        Kind::Admin => {
            let admin = topology.client_v4(rng.gen_range(0..topology.admins()));
            let endpoints = if chance(rng, 800) {
                let server = any_server(rng, topology);
                Endpoints::tcp(rng, admin, server, 22)
            } else {
                let client = topology.client_v4(rng.gen_range(0..topology.hosts()));
                Endpoints::tcp(rng, admin, client, 3389)
            };
            (endpoints, INTERNAL_OUTCOMES, ADMIN_SESSION)
        }
        Kind::Ping => {
            // ICMP echo request: Zeek puts the type in the source port, the code in the
            // destination port.
            let endpoints = Endpoints {
                src_ip: MONITOR,
                src_port: 8,
                dst_ip: any_server(rng, topology),
                dst_port: 0,
                proto: Proto::Icmp,
            };
            (endpoints, ALWAYS_ESTABLISHED, ECHO)
        }
        Kind::Scan => {
            let scanners = topology.scanners();
            let scanner = scanners
                .get(rng.gen_range(0..scanners.len().max(1) as u64) as usize)
                .copied();
            let [a, b, c] = scanner.map_or([10, 0, 1], |s| s.subnet);
            let src = topology.client_v4(scanner.map_or(0, |s| s.client));
            let dst = IpAddr::from([a, b, c, rng.gen_range(1..=254)]);
            let port = SCAN_PORTS[rng.gen_range(0..SCAN_PORTS.len() as u64) as usize];
            (Endpoints::tcp(rng, src, dst, port), SCAN_OUTCOMES, PROBE)
        }
        Kind::Bulk => {
            let client = rng.gen_range(0..topology.hosts());
            let dst = BULK_SINKS[skewed(rng, 3) as usize % BULK_SINKS.len()];
            let endpoints = Endpoints::tcp(rng, topology.client_v4(client), dst, 443);
            (endpoints, ALWAYS_ESTABLISHED, UPLOAD)
        }
    };
    let status = pick(rng, &outcomes);
    let shape = Shape::sample(rng, endpoints.proto, status, profile);
    Event {
        ts,
        src_ip: endpoints.src_ip,
        dst_ip: endpoints.dst_ip,
        src_port: endpoints.src_port,
        dst_port: endpoints.dst_port,
        proto: endpoints.proto,
        bytes_out: shape.bytes_out,
        bytes_in: shape.bytes_in,
        packets: shape.packets,
        duration_ms: shape.duration_ms,
        status,
    }
}

fn any_server(rng: &mut impl Rng, topology: &Topology) -> IpAddr {
    let tier = pick(rng, &[(Tier::Web, 2), (Tier::App, 2), (Tier::Db, 1)]);
    topology.server(tier, rng.gen_range(0..topology.tier_size(tier)))
}

/// Sizes, packets and duration of one connection.
struct Shape {
    bytes_out: u64,
    bytes_in: u64,
    packets: u64,
    duration_ms: Option<u64>,
}

impl Shape {
    fn sample(rng: &mut impl Rng, proto: Proto, status: Status, profile: Profile) -> Shape {
        let (out_lo, out_hi) = profile.bytes_out;
        let (in_lo, in_hi) = profile.bytes_in;
        let (dur_lo, dur_hi) = profile.duration_ms;
        match status {
            Status::Established => {
                let bytes_out = log_uniform(rng, out_lo, out_hi);
                let bytes_in = log_uniform(rng, in_lo, in_hi);
                // Full-size segments, plus the handshake and teardown for TCP.
                let overhead = match proto {
                    Proto::Tcp => rng.gen_range(4..=10),
                    _ => 0,
                };
                let packets = (bytes_out / 1_400).max(1) + (bytes_in / 1_400).max(1) + overhead;
                Shape {
                    bytes_out,
                    bytes_in,
                    packets,
                    duration_ms: Some(log_uniform(rng, dur_lo, dur_hi)),
                }
            }
            // A UDP request nobody answered.
            Status::Failed if proto == Proto::Udp => Shape {
                bytes_out: log_uniform(rng, out_lo, out_hi),
                bytes_in: 0,
                packets: 1,
                duration_ms: None,
            },
            // SYNs never answered: retries over a few seconds, or a single one.
            Status::Failed => {
                let packets = rng.gen_range(1..=3);
                let duration_ms = (packets > 1).then(|| rng.gen_range(1_000..=7_000));
                Shape {
                    bytes_out: 0,
                    bytes_in: 0,
                    packets,
                    duration_ms,
                }
            }
            Status::Rejected => Shape {
                bytes_out: 0,
                bytes_in: 0,
                packets: 2,
                duration_ms: Some(rng.gen_range(0..=2)),
            },
            // Cut off part-way.
            Status::Reset => {
                let bytes_out = log_uniform(rng, out_lo, out_hi.max(4) / 4);
                let bytes_in = rng.gen_range(0..=in_hi / 8);
                Shape {
                    bytes_out,
                    bytes_in,
                    packets: (bytes_out + bytes_in) / 1_400 + rng.gen_range(3..=6),
                    duration_ms: Some(log_uniform(rng, dur_lo, dur_hi)),
                }
            }
            Status::Other => Shape {
                bytes_out: rng.gen_range(0..=200),
                bytes_in: rng.gen_range(0..=200),
                packets: rng.gen_range(1..=4),
                duration_ms: Some(rng.gen_range(0..=1_000)),
            },
        }
    }
}
