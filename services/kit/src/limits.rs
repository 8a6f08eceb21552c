//! The limits every kefu server keeps, so that no caller can hold what others need. One table, with
//! its `KEFU_*` overrides (read in [`crate::config`]):
//!
//! | limit | default | variable | when it is reached |
//! |---|---|---|---|
//! | connections open at once, per server | 1,024 | `KEFU_MAX_CONNECTIONS` | the next connection waits in the listen queue until one closes |
//! | connections open at once from one peer address, per server | 64 | `KEFU_MAX_CONNECTIONS_PER_PEER` | the next one from that address is closed at once (counted, logged now and then): one machine never holds the server's whole budget |
//! | time from connecting to the first request (TLS, the HTTP/2 preface and a whole request's headers) | 10 s | `KEFU_HANDSHAKE_TIMEOUT` | the connection is closed, whatever it sent |
//! | calls in flight per connection | 256 | `KEFU_MAX_CALLS_PER_CONNECTION` | `RESOURCE_EXHAUSTED` at once (load shedding), never a queue |
//! | HTTP/2 streams per connection | the same | | the client is told by `SETTINGS_MAX_CONCURRENT_STREAMS` |
//! | time one call may take (a shorter `grpc-timeout` wins) | 30 s | `KEFU_CALL_TIMEOUT` | `CANCELLED`, and the handler is dropped |
//! | keep-alive ping, and the wait for its answer | 30 s, 20 s | `KEFU_KEEPALIVE` (the ping; the wait is two thirds of it) | a dead peer's connection is closed |
//! | a connection's age | 30 min | `KEFU_MAX_CONNECTION_AGE` | the server says GOAWAY: the client makes its next calls on a new connection (so load spreads over replicas) while the calls in flight finish |
//! | answering after SIGTERM while reporting `NOT_SERVING` (the drain) | 5 s | `KEFU_DRAIN` | the server takes no new connections and gives calls in flight 10 s more |
//! | request size | 6 MiB | | `RESOURCE_EXHAUSTED` (`kefu_kit::server::MAX_REQUEST_BYTES`) |
//! | calls per second of one subject (all its tokens together), at the gateway | 50, bursts of 100 | `KEFU_RATE_LIMIT` | `RESOURCE_EXHAUSTED`, saying when to retry |
//! | refused calls (unauthenticated, denied) per second of one peer address, at the gateway | 10, bursts of 20 | `KEFU_REFUSALS_PER_PEER` | its further refused calls are `RESOURCE_EXHAUSTED`, saying when to retry, counted and not logged; its refusals are logged as one line per address every 10 s with how many were not |
//! | evidence one claim holds (claims' `AttachEvidence`; each file at most 4 MiB) | 50 files, 100 MiB | `KEFU_EVIDENCE_FILES_PER_CLAIM`, `KEFU_EVIDENCE_MIB_PER_CLAIM` | `RESOURCE_EXHAUSTED` naming the quota and its size (it never resets: a claim's evidence is kept); nothing is written |
//! | evidence one principal attaches in a day (the company's day: midnight to midnight in `KEFU_TIME_ZONE`, by the services' clock) | 200 files, 200 MiB | `KEFU_EVIDENCE_FILES_PER_DAY`, `KEFU_EVIDENCE_MIB_PER_DAY` | `RESOURCE_EXHAUSTED` naming the quota, its size and when it resets (the next midnight); nothing is written |
//!
//! The first three are kept here, on the accepted connections ([`incoming`]), for the gRPC servers
//! and the console alike; the evidence quotas by claims, counted and written in one transaction
//! per claim and principal ([`crate::db::serialize`]), so concurrent uploads never pass them; the
//! others by the server builder in [`crate::server::serve`] and the gateway's front door. A
//! connection counts as having made its first request when the server's stack sees the request
//! ([`Peer::mark_served`]): a byte, or the bare preface, is not enough.

use std::{
    collections::HashMap,
    future::Future as _,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures_util::Stream;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Sleep,
};

/// The limits of one server (see the module's table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    /// Connections open at once from one peer address (IPv4, or IPv6 as a whole address).
    pub max_connections_per_peer: usize,
    pub handshake_timeout: Duration,
    pub calls_per_connection: usize,
    pub call_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub max_connection_age: Duration,
    /// Calls per second one principal may make at the gateway; bursts of twice as many.
    pub rate_per_principal: u32,
    /// Refused calls per second one peer address may have at the gateway before its refused calls
    /// are shed; bursts of twice as many.
    pub refusals_per_peer: u32,
    /// How long a server goes on answering after SIGTERM, reporting `NOT_SERVING` so that
    /// Kubernetes and balancers stop sending it calls first (see [`crate::shutdown`]).
    pub drain: Duration,
    /// What evidence a claim holds and a principal attaches in a day, at most.
    pub evidence: EvidenceQuota,
}

/// The evidence quotas (claims' `AttachEvidence`; see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidenceQuota {
    pub files_per_claim: u64,
    pub bytes_per_claim: u64,
    pub files_per_day: u64,
    pub bytes_per_day: u64,
}

impl Default for EvidenceQuota {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        EvidenceQuota { files_per_claim: 50, bytes_per_claim: 100 * MIB, files_per_day: 200, bytes_per_day: 200 * MIB }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1_024,
            max_connections_per_peer: 64,
            handshake_timeout: Duration::from_secs(10),
            calls_per_connection: 256,
            call_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            max_connection_age: Duration::from_secs(30 * 60),
            rate_per_principal: 50,
            refusals_per_peer: 10,
            drain: Duration::from_secs(5),
            evidence: EvidenceQuota::default(),
        }
    }
}

/// Who is at the other end of one connection, and whether it has made a request yet. Every
/// request a kefu server takes carries it in its extensions (tonic's connect info; under TLS inside
/// `TlsConnectInfo`), see [`Peer::of`].
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's address; `None` where the socket could not say.
    pub address: Option<SocketAddr>,
    served: Arc<AtomicBool>,
}

impl Peer {
    /// The peer of a request a kefu server took, if it came through [`incoming`].
    pub fn of<B>(request: &http::Request<B>) -> Option<&Peer> {
        let extensions = request.extensions();
        extensions
            .get::<Peer>()
            .or_else(|| extensions.get::<tonic::transport::server::TlsConnectInfo<Peer>>().map(|tls| tls.get_ref()))
    }

    /// The connection made a whole request: its handshake time no longer runs.
    pub fn mark_served(&self) {
        self.served.store(true, Ordering::Relaxed);
    }

    /// The peer's IP address, as one machine: an IPv4 address mapped into IPv6 is the IPv4 one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.map(|address| address.ip().to_canonical())
    }
}

/// How many connections each peer address holds open now.
#[derive(Default)]
struct PerPeer {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerPeer {
    /// Takes a place for `ip` if it holds fewer than `most`.
    fn admit(self: &Arc<Self>, ip: IpAddr, most: usize) -> Option<PeerPlace> {
        let mut open = self.open.lock().ok()?;
        let held = open.entry(ip).or_insert(0);
        if *held >= most {
            return None;
        }
        *held += 1;
        Some(PeerPlace { counts: self.clone(), ip })
    }
}

/// One connection's place among its peer's; given back when the connection closes.
struct PeerPlace {
    counts: Arc<PerPeer>,
    ip: IpAddr,
}

impl Drop for PeerPlace {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counts.open.lock()
            && let Some(held) = open.get_mut(&self.ip)
        {
            *held -= 1;
            if *held == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Connections closed at once because their peer held its share, since start.
pub static REFUSED_OVER_PEER_SHARE: AtomicU64 = AtomicU64::new(0);

/// The connections a listener accepts: at most `max_connections` open at once and
/// `max_connections_per_peer` from one address (one more from it is closed at once), each closed
/// if it has not made a whole first request within the handshake timeout.
pub fn incoming(
    listener: TcpListener,
    limits: &Limits,
) -> impl Stream<Item = Result<Guarded, io::Error>> + Send + 'static {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_peer = Arc::new(PerPeer::default());
    let share = limits.max_connections_per_peer.max(1);
    let handshake = limits.handshake_timeout;
    futures_util::stream::unfold((listener, slots), move |(listener, slots)| {
        let per_peer = per_peer.clone();
        async move {
            let Ok(slot) = slots.clone().acquire_owned().await else { return None };
            loop {
                match listener.accept().await {
                    Ok((stream, address)) => {
                        let Some(place) = per_peer.admit(address.ip().to_canonical(), share) else {
                            // Closed at once: the peer already holds its share.
                            drop(stream);
                            refused_over_share(address.ip().to_canonical(), share);
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let peer = Peer { address: Some(address), served: Arc::new(AtomicBool::new(false)) };
                        let guarded = Guarded {
                            stream,
                            peer,
                            _slot: slot,
                            _place: place,
                            handshake: Some(Box::pin(tokio::time::sleep(handshake))),
                        };
                        return Some((Ok(guarded), (listener, slots)));
                    }
                    // Out of file descriptors, a connection reset before it was accepted: not the
                    // server's end. Wait a moment and accept the next.
                    Err(error) => {
                        tracing::warn!(%error, "cannot accept a connection; trying again");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    })
}

/// Counts a connection closed over its peer's share, and says so now and then (once per peer
/// address every ten seconds, with how many were not logged).
fn refused_over_share(ip: IpAddr, share: usize) {
    REFUSED_OVER_PEER_SHARE.fetch_add(1, Ordering::Relaxed);
    crate::metrics::connection_refused("peer_share");
    if let Some(left_out) = crate::error::now_and_then(&format!("peer share {ip}")) {
        tracing::warn!(peer = %ip, share, closed_since_last_said = left_out, "a peer address holds its share of connections; closing its next ones at once");
    }
}

/// An accepted connection: holds its places until it closes, and fails its reads once the
/// handshake timeout has passed without a whole first request ([`Peer::mark_served`]), whatever
/// bytes came before.
pub struct Guarded {
    stream: TcpStream,
    peer: Peer,
    _slot: OwnedSemaphorePermit,
    _place: PeerPlace,
    handshake: Option<Pin<Box<Sleep>>>,
}

impl Guarded {
    /// Who is at the other end (what the console marks served; tonic's servers read it from the
    /// connect info).
    pub fn peer(&self) -> &Peer {
        &self.peer
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.handshake.is_some() {
            if self.peer.served.load(Ordering::Relaxed) {
                self.handshake = None;
            } else if let Some(deadline) = self.handshake.as_mut()
                && deadline.as_mut().poll(cx).is_ready()
            {
                crate::metrics::connection_refused("handshake_timeout");
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "no first request in time")));
            }
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Guarded {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer.clone()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    /// Nagle's algorithm holds a small response until the peer's delayed ACK (about 40 ms): every
    /// connection a kefu server accepts turns it off. Checked on a real socket.
    #[tokio::test]
    async fn every_accepted_connection_sends_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let accepted = incoming(listener, &Limits::default());
        let mut accepted = std::pin::pin!(accepted);
        let _client = TcpStream::connect(address).await.expect("connected");
        let guarded = accepted.next().await.expect("a connection").expect("accepted");
        assert!(guarded.stream.nodelay().expect("the socket option"), "TCP_NODELAY is set");
    }

    /// A peer that sends bytes (here, the HTTP/2 preface) but no whole request is cut off at the
    /// handshake timeout all the same; a connection marked served is not.
    #[tokio::test]
    async fn bytes_are_not_a_request_and_only_a_request_stops_the_handshake_clock() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let limits = Limits { handshake_timeout: Duration::from_millis(300), ..Limits::default() };
        let accepted = incoming(listener, &limits);
        let mut accepted = std::pin::pin!(accepted);
        let mut talker = TcpStream::connect(address).await.expect("connected");
        let mut server_side = accepted.next().await.expect("a connection").expect("accepted");
        let mut served_client = TcpStream::connect(address).await.expect("connected");
        let mut served = accepted.next().await.expect("a connection").expect("accepted");
        served.peer().mark_served();
        talker.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.expect("sent");
        served_client.write_all(b"x").await.expect("sent");
        let mut buffer = [0u8; 64];
        let read = server_side.read(&mut buffer).await.expect("the preface arrives");
        assert!(read > 0);
        let cut = tokio::time::timeout(Duration::from_secs(2), server_side.read(&mut buffer)).await;
        let error = cut.expect("cut within the handshake time").expect_err("a read error");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(served.read(&mut buffer).await.expect("a byte"), 1);
        let waited = tokio::time::timeout(Duration::from_millis(600), served.read(&mut buffer)).await;
        assert!(waited.is_err(), "a served connection waits for its next request: {waited:?}");
    }

    /// One address holds at most its share; its next connection is closed at once, and another
    /// address is still let in. A closed connection gives its place back.
    #[tokio::test]
    async fn one_address_holds_at_most_its_share() {
        use tokio::io::AsyncReadExt;

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let limits = Limits { max_connections_per_peer: 2, ..Limits::default() };
        let accepted = incoming(listener, &limits);
        let mut accepted = std::pin::pin!(accepted);
        let from = |ip: &str| {
            let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
            socket.bind(format!("{ip}:0").parse().expect("an address")).expect("bound");
            socket.connect(address)
        };
        let _first = from("127.0.0.2").await.expect("connected");
        let one = accepted.next().await.expect("a connection").expect("accepted");
        let _second = from("127.0.0.2").await.expect("connected");
        let _two = accepted.next().await.expect("a connection").expect("accepted");
        let mut third = from("127.0.0.2").await.expect("connected");
        let _other = from("127.0.0.3").await.expect("connected");
        let next = accepted.next().await.expect("a connection").expect("accepted");
        assert_eq!(next.peer().ip(), Some("127.0.0.3".parse().expect("an IP")), "the third from .2 was passed over");
        let mut buffer = [0u8; 8];
        let closed = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buffer)).await.expect("answered");
        assert!(matches!(closed, Ok(0) | Err(_)), "closed at once: {closed:?}");
        drop(one);
        let _again = from("127.0.0.2").await.expect("connected");
        let again = accepted.next().await.expect("a connection").expect("accepted");
        assert_eq!(again.peer().ip(), Some("127.0.0.2".parse().expect("an IP")), "a place given back");
    }

    /// Every channel kefu dials (to a service, to the gateway) is built with TCP_NODELAY.
    #[test]
    fn every_dialled_channel_sends_without_delay() {
        let endpoint = crate::server::endpoint("http://127.0.0.1:1").expect("a URL");
        assert!(endpoint.get_tcp_nodelay());
    }
}
