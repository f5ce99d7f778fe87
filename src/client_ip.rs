//! The client address kept with a device, truncated: personal data, kept only when the app
//! asks for it ([`EngineBuilder::record_client_ip`](crate::EngineBuilder::record_client_ip)).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The network of `ip`, as text: IPv4 truncated to its /24 (`203.0.113.0/24`), IPv6 to its
/// /48 (`2001:db8:1::/48`). An IPv4 address mapped into IPv6 counts as IPv4.
pub(crate) fn truncated_ip(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{}/24", Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{}/48", Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::truncated_ip;

    #[test]
    fn truncates() {
        assert_eq!(
            truncated_ip("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            truncated_ip("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1::/48"
        );
        assert_eq!(
            truncated_ip("::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.0/24"
        );
        assert_eq!(truncated_ip("::1".parse().unwrap()), "::/48");
    }
}
