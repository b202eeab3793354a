//! Address classes: what a client can be expected to reach.

use std::net::IpAddr;

/// Loopback, private (RFC 1918, IPv6 unique local) or link-local: an address that means
/// something only inside one network.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => v.is_loopback() || v.is_private() || v.is_link_local(),
        IpAddr::V6(v) => {
            v.is_loopback()
                || (v.segments()[0] & 0xfe00) == 0xfc00
                || (v.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(
                is_internal(a.parse().unwrap_or_else(|_| unreachable!())),
                "{a}"
            );
        }
        for a in ["8.8.8.8", "172.32.0.1", "2001:db8::1"] {
            assert!(
                !is_internal(a.parse().unwrap_or_else(|_| unreachable!())),
                "{a}"
            );
        }
    }
}
