//! Where webhooks may go: public addresses only. A webhook URL is the caller's to choose, so
//! without this rule kefu would post (and record the errors of) requests to its own database
//! (`127.0.0.1:5432`), the cloud's metadata service (`169.254.169.254`) or any host of the company
//! network: a port scanner working for whoever registers endpoints.
//!
//! Loopback, private, link-local, shared (CGNAT), multicast, broadcast, unspecified and
//! documentation addresses, in IPv4 and IPv6 (IPv4-mapped ones as their IPv4), are refused — when
//! the URL names one, and every time the host name resolves to one (at each connection, so a name
//! that later resolves elsewhere gains nothing) — unless `KEFU_WEBHOOK_ALLOW_PRIVATE` names their
//! network (a company's own branch systems; the tests' loopback servers).

use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hyper_util::client::legacy::connect::dns::Name;

/// The message of a connection refused by this rule; the attempt record shows it.
pub const NOT_ALLOWED: &str = "address not allowed";

/// Networks the operator allows although they are not public.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed(Vec<(IpAddr, u8)>);

impl Allowed {
    /// `10.1.0.0/16,127.0.0.1/32,fd00::/8`; an address alone is a network of one.
    pub fn parse(text: &str) -> Result<Allowed, String> {
        let mut networks = Vec::new();
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (address, bits) = item.split_once('/').map_or((item, None), |(address, bits)| (address, Some(bits)));
            let address: IpAddr =
                address.parse().map_err(|_| format!("{item:?} is not an address or a network like 10.0.0.0/8"))?;
            let most = if address.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => most,
                Some(bits) => bits
                    .parse::<u8>()
                    .ok()
                    .filter(|bits| *bits <= most)
                    .ok_or_else(|| format!("{item:?}: the prefix length must be 0 to {most}"))?,
            };
            networks.push((address, bits));
        }
        Ok(Allowed(networks))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|(network, bits)| match (network, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => same_prefix(&network.octets(), &ip.octets(), *bits),
            (IpAddr::V6(network), IpAddr::V6(ip)) => same_prefix(&network.octets(), &ip.octets(), *bits),
            _ => false,
        })
    }

    /// Whether a webhook may be posted to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        is_public(ip) || self.contains(ip)
    }

    /// Checks the host of a webhook URL when it is registered: an address must be permitted, and a
    /// host that only looks like a name (`2130706433`, `0x7f.1`) is no name.
    pub fn check_host(&self, host: &str) -> Result<(), &'static str> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return if self.permits(ip) { Ok(()) } else { Err(REFUSED) };
        }
        let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or(host);
        let numeric = last.bytes().all(|b| b.is_ascii_hexdigit()) && last.bytes().any(|b| b.is_ascii_digit())
            || last.starts_with("0x")
            || last.starts_with("0X");
        if numeric {
            return Err(REFUSED);
        }
        // `localhost` is the loopback, whatever resolves it.
        if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
            return if self.permits(IpAddr::V4(Ipv4Addr::LOCALHOST)) { Ok(()) } else { Err(REFUSED) };
        }
        Ok(())
    }
}

const REFUSED: &str = "a public host: loopback, private, link-local and other internal addresses are refused (an operator may allow a network with KEFU_WEBHOOK_ALLOW_PRIVATE)";

fn same_prefix(network: &[u8], ip: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    network[..whole] == ip[..whole] && (rest == 0 || (network[whole] ^ ip[whole]) >> (8 - rest) == 0)
}

/// Whether `ip` is an address of the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8
        || first == 0x0064 && ip.segments()[1] == 0xff9b)
}

/// Resolves webhook hosts like the system does, then keeps only the addresses [`Allowed::permits`]:
/// a name that resolves only to internal addresses fails to connect with [`NOT_ALLOWED`].
#[derive(Clone)]
pub struct GuardedResolver {
    allowed: Arc<Allowed>,
}

impl GuardedResolver {
    pub fn new(allowed: Arc<Allowed>) -> GuardedResolver {
        GuardedResolver { allowed }
    }
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> =
                found.into_iter().filter(|address| allowed.permits(address.ip())).collect();
            if permitted.is_empty() {
                return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, NOT_ALLOWED));
            }
            Ok(permitted.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_in_every_form() {
        let none = Allowed::default();
        for host in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "[::1]",
            "[::]",
            "[fe80::1]",
            "[fd00::1]",
            "[::ffff:127.0.0.1]",
            "2130706433",
            "0x7f000001",
            "017700000001",
            "127.1",
            "localhost",
            "kefu.localhost",
        ] {
            assert!(none.check_host(host).is_err(), "{host} must be refused");
        }
        for host in
            ["branch.example.com", "93.184.216.34", "[2606:2800:220:1:248:1893:25c8:1946]", "sh01.kefu-branches.cn"]
        {
            assert_eq!(none.check_host(host), Ok(()), "{host} is public");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_an_internal_address_is_not_connected_to() {
        use std::str::FromStr;
        let name = Name::from_str("localhost").expect("a name");
        let refused =
            tower::ServiceExt::oneshot(GuardedResolver::new(Arc::new(Allowed::default())), name.clone()).await;
        assert_eq!(refused.expect_err("loopback").to_string(), NOT_ALLOWED);
        let allowed = Arc::new(Allowed::parse("127.0.0.0/8,::1").expect("valid"));
        let found: Vec<SocketAddr> =
            tower::ServiceExt::oneshot(GuardedResolver::new(allowed), name).await.expect("allowed").collect();
        assert!(!found.is_empty() && found.iter().all(|address| address.ip().is_loopback()), "{found:?}");
    }

    #[test]
    fn an_operator_may_allow_a_network() {
        let allowed = Allowed::parse("127.0.0.0/8, 10.20.0.0/16,fd00::/8").expect("valid");
        assert_eq!(allowed.check_host("127.0.0.1"), Ok(()));
        assert_eq!(allowed.check_host("localhost"), Ok(()), "the loopback, allowed");
        assert!(allowed.check_host("2130706433").is_err(), "a number is no host name, allowed or not");
        assert_eq!(allowed.check_host("10.20.3.4"), Ok(()));
        assert!(allowed.check_host("10.21.3.4").is_err());
        assert_eq!(allowed.check_host("[fd12::1]"), Ok(()));
        assert!(allowed.permits("::ffff:127.0.0.1".parse().expect("an address")), "mapped as its IPv4");
        assert!(Allowed::parse("10.0.0.0/33").is_err());
        assert!(Allowed::parse("intranet").is_err());
    }
}
