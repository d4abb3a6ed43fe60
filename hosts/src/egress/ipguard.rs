//! The address classifier behind the dial-time check: which resolved addresses the host
//! refuses to connect to (unless the exact address and port are allow-listed).
//!
//! The refused set is Conduit's: IPv4 loopback and `0.0.0.0/8`, the RFC 1918 private
//! ranges, link-local (with the cloud metadata address `169.254.169.254`), carrier-grade
//! NAT, multicast and broadcast; IPv6 loopback, unspecified, link-local, site-local and
//! unique-local addresses and multicast; and every IPv6 form that embeds an IPv4 address
//! (mapped addresses are unwrapped and checked as IPv4; NAT64, IPv4-translated, 6to4,
//! Teredo and IPv4-compatible addresses are refused outright).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused: a stable label for the audit log.
pub type Reason = &'static str;

/// IPv4 ranges refused (network, prefix length, reason).
const REFUSED_V4: [([u8; 4], u8, Reason); 7] = [
    ([127, 0, 0, 0], 8, "v4_loopback_or_any"),
    ([0, 0, 0, 0], 8, "v4_loopback_or_any"),
    ([10, 0, 0, 0], 8, "v4_private"),
    ([172, 16, 0, 0], 12, "v4_private"),
    ([192, 168, 0, 0], 16, "v4_private"),
    ([169, 254, 0, 0], 16, "v4_link_local_or_metadata"),
    ([100, 64, 0, 0], 10, "v4_cgnat"),
];

/// IPv6 ranges refused (network, prefix length, reason).
const REFUSED_V6: [(u128, u8, Reason); 5] = [
    (1, 128, "v6_loopback_or_unspecified"),
    (0, 128, "v6_loopback_or_unspecified"),
    (0xfe80 << 112, 10, "v6_link_local"),
    (0xfec0 << 112, 10, "v6_site_local"),
    (0xfc00 << 112, 7, "v6_ula"),
];

fn in_v4(ip: Ipv4Addr, network: [u8; 4], prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(network)) & mask
}

fn in_v6(ip: Ipv6Addr, network: u128, prefix: u8) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    u128::from(ip) & mask == network & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<Reason> {
    for (network, prefix, reason) in REFUSED_V4 {
        if in_v4(ip, network, prefix) {
            return Some(reason);
        }
    }
    // Multicast (224.0.0.0/4), the reserved 240.0.0.0/4 and broadcast.
    (ip.octets()[0] >= 224).then_some("reserved_or_multicast")
}

/// Whether a host's connection to `ip` must be refused (`Some(reason)`), judged on the
/// address itself (its textual form does not matter). `None`: allowed by range (the caller
/// still applies the allow-listed (address, port) exceptions to a refusal).
pub fn refuse(ip: IpAddr) -> Option<Reason> {
    let v6 = match ip {
        IpAddr::V4(v4) => return classify_v4(v4),
        IpAddr::V6(v6) => v6,
    };
    // ::ffff:a.b.c.d: checked as the IPv4 address it carries.
    if let Some(v4) = v6.to_ipv4_mapped() {
        return classify_v4(v4).map(|_| "v4_mapped_embedded");
    }
    let bits = u128::from(v6);
    let segments = v6.segments();
    if in_v6(v6, 0x0064_ff9b << 96, 96) {
        // NAT64 (64:ff9b::/96): a DNS64 answer can embed the metadata address.
        return Some("nat64_embedded_v4");
    }
    if in_v6(v6, 0xffff << 48, 96) {
        // IPv4-translated (::ffff:0:a.b.c.d).
        return Some("v4_translated_embedded");
    }
    if segments[0] == 0x2002 {
        return Some("6to4_embedded_v4");
    }
    if segments[0] == 0x2001 && segments[1] == 0 {
        return Some("teredo_embedded_v4");
    }
    // IPv4-compatible (::a.b.c.d), but not :: or ::1 (refused below as themselves).
    if bits >> 32 == 0 && bits > 1 {
        return Some("v4_compatible_embedded");
    }
    for (network, prefix, reason) in REFUSED_V6 {
        if in_v6(v6, network, prefix) {
            return Some(reason);
        }
    }
    (segments[0] >> 8 == 0xff).then_some("reserved_or_multicast")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> Option<Reason> {
        refuse(text.parse().unwrap())
    }

    #[test]
    fn private_loopback_link_local_and_reserved_v4_are_refused() {
        for (ip, reason) in [
            ("127.0.0.1", "v4_loopback_or_any"),
            ("127.255.255.254", "v4_loopback_or_any"),
            ("0.0.0.0", "v4_loopback_or_any"),
            ("10.1.2.3", "v4_private"),
            ("172.16.0.1", "v4_private"),
            ("172.31.255.255", "v4_private"),
            ("192.168.1.1", "v4_private"),
            ("169.254.169.254", "v4_link_local_or_metadata"),
            ("100.64.0.1", "v4_cgnat"),
            ("100.127.255.255", "v4_cgnat"),
            ("224.0.0.1", "reserved_or_multicast"),
            ("255.255.255.255", "reserved_or_multicast"),
            ("240.0.0.1", "reserved_or_multicast"),
        ] {
            assert_eq!(refused(ip), Some(reason), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "11.0.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert_eq!(refused(ip), None, "{ip}");
        }
    }

    #[test]
    fn v6_loopback_link_local_ula_and_multicast_are_refused() {
        for (ip, reason) in [
            ("::1", "v6_loopback_or_unspecified"),
            ("::", "v6_loopback_or_unspecified"),
            ("fe80::1", "v6_link_local"),
            ("febf::1", "v6_link_local"),
            ("fec0::1", "v6_site_local"),
            ("fc00::1", "v6_ula"),
            ("fd12:3456::1", "v6_ula"),
            ("ff02::1", "reserved_or_multicast"),
        ] {
            assert_eq!(refused(ip), Some(reason), "{ip}");
        }
    }

    #[test]
    fn embedded_v4_forms_are_unwrapped_or_refused() {
        for (ip, reason) in [
            ("::ffff:169.254.169.254", "v4_mapped_embedded"),
            ("::ffff:127.0.0.1", "v4_mapped_embedded"),
            ("64:ff9b::a9fe:a9fe", "nat64_embedded_v4"),
            ("64:ff9b::808:808", "nat64_embedded_v4"),
            ("::ffff:0:a9fe:a9fe", "v4_translated_embedded"),
            ("2002:a9fe:a9fe::1", "6to4_embedded_v4"),
            ("2001:0:4136:e378::1", "teredo_embedded_v4"),
            ("::a9fe:a9fe", "v4_compatible_embedded"),
        ] {
            assert_eq!(refused(ip), Some(reason), "{ip}");
        }
        // A mapped public address is as public as the address it carries.
        assert_eq!(refused("::ffff:8.8.8.8"), None);
    }
}
