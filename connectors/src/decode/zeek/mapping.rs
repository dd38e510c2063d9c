//! How Zeek's `proto` and `conn_state` values map onto [`Proto`] and [`Status`]
//! (docs/design.md §2).

use flowsight_events::{Proto, Status};

/// Zeek's transport protocol name; anything but tcp, udp and icmp (e.g.
/// `unknown_transport`) is [`Proto::Other`].
pub(crate) fn proto_from_name(name: &str) -> Proto {
    [Proto::Tcp, Proto::Udp, Proto::Icmp]
        .into_iter()
        .find(|proto| proto.as_str().eq_ignore_ascii_case(name))
        .unwrap_or(Proto::Other)
}

/// Zeek's `conn_state` summary of how a connection went, ignoring case; unknown states
/// are [`Status::Other`].
pub(crate) fn conn_state_status(state: &str) -> Status {
    CONN_STATES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(state))
        .map_or(Status::Other, |&(_, status)| status)
}

const CONN_STATES: [(&str, Status); 13] = [
    // Established, whether or not it was closed cleanly.
    ("SF", Status::Established),
    ("S1", Status::Established),
    ("S2", Status::Established),
    ("S3", Status::Established),
    ("REJ", Status::Rejected),
    ("RSTO", Status::Reset),
    ("RSTR", Status::Reset),
    ("RSTOS0", Status::Reset),
    ("RSTRH", Status::Reset),
    // Attempts never answered, or midstream traffic without a handshake.
    ("S0", Status::Failed),
    ("SH", Status::Failed),
    ("SHR", Status::Failed),
    ("OTH", Status::Failed),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_state_table() {
        let table = [
            ("SF", Status::Established),
            ("S1", Status::Established),
            ("S2", Status::Established),
            ("S3", Status::Established),
            ("REJ", Status::Rejected),
            ("RSTO", Status::Reset),
            ("RSTR", Status::Reset),
            ("RSTOS0", Status::Reset),
            ("RSTRH", Status::Reset),
            ("S0", Status::Failed),
            ("SH", Status::Failed),
            ("SHR", Status::Failed),
            ("OTH", Status::Failed),
            ("S4", Status::Other),
            ("sf", Status::Established),
            ("rej", Status::Rejected),
            ("", Status::Other),
        ];
        for (state, status) in table {
            assert_eq!(conn_state_status(state), status, "{state:?}");
        }
    }

    #[test]
    fn proto_names() {
        assert_eq!(proto_from_name("tcp"), Proto::Tcp);
        assert_eq!(proto_from_name("UDP"), Proto::Udp);
        assert_eq!(proto_from_name("icmp"), Proto::Icmp);
        assert_eq!(proto_from_name("unknown_transport"), Proto::Other);
        assert_eq!(proto_from_name("other"), Proto::Other);
    }
}
