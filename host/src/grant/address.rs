//! Which network addresses a tool may reach: every address a granted name
//! resolves to is classified here before a connection is made, so a name
//! (or a numeric trick like `2130706433` or `[::ffff:127.0.0.1]`) that leads
//! into the node's own network is refused unless the policy allows it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of address an IP is, as far as reaching it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// A globally routed address.
    Public,
    /// This machine (`127.0.0.0/8`, `::1`).
    Loopback,
    /// A private network (`10/8`, `172.16/12`, `192.168/16`, `fc00::/7`,
    /// `100.64/10`, benchmarking and IETF ranges).
    Private,
    /// Link-local (`169.254/16`, `fe80::/10`).
    LinkLocal,
    /// A cloud metadata or platform service (`169.254.169.254`,
    /// `169.254.170.2`, `169.254.170.23`, `169.254.0.23`, `100.100.100.200`,
    /// `168.63.129.16`, `fd00:ec2::254`, `fd00:ec2::23`): reachable only by
    /// a request to that address literally, named in the policy's allow list.
    Metadata,
    /// Never a destination: unspecified, multicast, broadcast,
    /// documentation and reserved ranges.
    Unusable,
}

impl AddressClass {
    /// Words for an error message.
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private-network address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Unusable => "an address that is never a destination",
        }
    }
}

/// The class of `ip`; IPv6 forms that embed an IPv4 address (mapped,
/// compatible, NAT64, 6to4) are classified by the embedded address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, d] = ip.octets();
    match (a, b, c, d) {
        (169, 254, 169, 254)
        | (169, 254, 170, 2)
        | (169, 254, 170, 23)
        | (169, 254, 0, 23)
        | (100, 100, 100, 200)
        | (168, 63, 129, 16) => AddressClass::Metadata,
        (127, ..) => AddressClass::Loopback,
        (10, ..) | (192, 168, ..) | (192, 0, 0, _) => AddressClass::Private,
        (172, b, ..) if (16..32).contains(&b) => AddressClass::Private,
        (100, b, ..) if (64..128).contains(&b) => AddressClass::Private,
        (198, 18 | 19, ..) => AddressClass::Private,
        (169, 254, ..) => AddressClass::LinkLocal,
        (0, ..) | (224..=255, ..) => AddressClass::Unusable,
        (192, 0, 2, _) | (198, 51, 100, _) | (203, 0, 113, _) => AddressClass::Unusable,
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        || ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23)
    {
        return AddressClass::Metadata;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    match s[0] {
        0xfe80..=0xfebf => AddressClass::LinkLocal,
        0xfec0..=0xfeff | 0xfc00..=0xfdff => AddressClass::Private,
        0xff00..=0xffff => AddressClass::Unusable,
        // Documentation, Teredo, discard-only.
        0x2001 if s[1] == 0x0db8 || s[1] == 0 => AddressClass::Unusable,
        0x0100 if s[1..4] == [0, 0, 0] => AddressClass::Unusable,
        0 => AddressClass::Unusable, // unspecified and the rest of ::/16 not handled above
        _ => AddressClass::Public,
    }
}

/// The IPv4 address inside an IPv6 one: `::ffff:a.b.c.d`, `::a.b.c.d`,
/// `64:ff9b::a.b.c.d` and `64:ff9b:1::/48` (NAT64, well-known and local
/// use) or `2002:aabb:ccdd::` (6to4).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0, _, _] if ip != Ipv6Addr::UNSPECIFIED && ip != Ipv6Addr::LOCALHOST => Some(tail),
        [0x64, 0xff9b, ..] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

/// Why a resolved address may not be reached, or `None` when it may.
/// `literal` says the request named this very address and the policy's
/// allow list names it too: then any class but unusable passes. Otherwise
/// `allow_private` admits loopback, private and link-local addresses, and
/// metadata addresses never pass.
pub fn refusal(ip: IpAddr, allow_private: bool, literal: bool) -> Option<AddressClass> {
    let class = classify(ip);
    let allowed = match class {
        AddressClass::Public => true,
        AddressClass::Unusable => false,
        _ if literal => true,
        AddressClass::Loopback | AddressClass::Private | AddressClass::LinkLocal => allow_private,
        AddressClass::Metadata => false,
    };
    (!allowed).then_some(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> AddressClass {
        classify(text.parse().unwrap())
    }

    #[test]
    fn ranges_are_classified() {
        assert_eq!(class("93.184.216.34"), AddressClass::Public);
        assert_eq!(class("2606:4700::1111"), AddressClass::Public);
        assert_eq!(class("127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("127.1.2.3"), AddressClass::Loopback);
        assert_eq!(class("::1"), AddressClass::Loopback);
        for private in ["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "fd12::1"] {
            assert_eq!(class(private), AddressClass::Private, "{private}");
        }
        assert_eq!(class("172.32.0.1"), AddressClass::Public);
        assert_eq!(class("169.254.1.1"), AddressClass::LinkLocal);
        assert_eq!(class("fe80::1"), AddressClass::LinkLocal);
        for metadata in ["169.254.169.254", "100.100.100.200", "fd00:ec2::254", "168.63.129.16", "169.254.170.23"] {
            assert_eq!(class(metadata), AddressClass::Metadata, "{metadata}");
        }
        for never in ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1", "192.0.2.1"] {
            assert_eq!(class(never), AddressClass::Unusable, "{never}");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_addresses_are_seen_through() {
        assert_eq!(class("::ffff:127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("::ffff:169.254.169.254"), AddressClass::Metadata);
        assert_eq!(class("::10.0.0.1"), AddressClass::Private);
        assert_eq!(class("64:ff9b::10.0.0.1"), AddressClass::Private);
        assert_eq!(class("2002:7f00:1::"), AddressClass::Loopback);
        assert_eq!(class("64:ff9b:1::a00:1"), AddressClass::Private, "local-use NAT64");
        assert_eq!(class("::ffff:8.8.8.8"), AddressClass::Public);
    }

    #[test]
    fn private_needs_the_flag_and_metadata_needs_its_literal_address() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        assert_eq!(refusal(loopback, false, false), Some(AddressClass::Loopback));
        assert_eq!(refusal(loopback, true, false), None);
        assert_eq!(refusal(loopback, false, true), None, "named literally in request and policy");
        assert_eq!(refusal(metadata, true, false), Some(AddressClass::Metadata));
        assert_eq!(refusal(metadata, false, true), None);
        assert_eq!(refusal("0.0.0.0".parse().unwrap(), true, true), Some(AddressClass::Unusable));
    }
}
