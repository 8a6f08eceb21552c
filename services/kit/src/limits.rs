//! The limits every kefu server keeps, so that no caller can hold what others need. One table, with
//! its `KEFU_*` overrides (read in [`crate::config`]):
//!
//! | limit | default | variable | when it is reached |
//! |---|---|---|---|
//! | connections open at once, per server | 1,024 | `KEFU_MAX_CONNECTIONS` | the next connection waits in the listen queue until one closes |
//! | time to send the first bytes (the HTTP/2 preface) | 10 s | `KEFU_HANDSHAKE_TIMEOUT` | the connection is closed |
//! | calls in flight per connection | 256 | `KEFU_MAX_CALLS_PER_CONNECTION` | `RESOURCE_EXHAUSTED` at once (load shedding), never a queue |
//! | HTTP/2 streams per connection | the same | | the client is told by `SETTINGS_MAX_CONCURRENT_STREAMS` |
//! | time one call may take (a shorter `grpc-timeout` wins) | 30 s | `KEFU_CALL_TIMEOUT` | `CANCELLED`, and the handler is dropped |
//! | keep-alive ping, and the wait for its answer | 30 s, 20 s | `KEFU_KEEPALIVE` (the ping; the wait is two thirds of it) | a dead peer's connection is closed |
//! | a connection's age | 30 min | `KEFU_MAX_CONNECTION_AGE` | the server says GOAWAY: the client makes its next calls on a new connection (so load spreads over replicas) while the calls in flight finish |
//! | answering after SIGTERM while reporting `NOT_SERVING` (the drain) | 5 s | `KEFU_DRAIN` | the server takes no new connections and gives calls in flight 10 s more |
//! | request size | 6 MiB | | `RESOURCE_EXHAUSTED` (`kefu_kit::server::MAX_REQUEST_BYTES`) |
//! | calls per second of one principal, at the gateway | 50, bursts of 100 | `KEFU_RATE_LIMIT` | `RESOURCE_EXHAUSTED`, saying when to retry |
//! | evidence one claim holds (claims' `AttachEvidence`; each file at most 4 MiB) | 50 files, 100 MiB | `KEFU_EVIDENCE_FILES_PER_CLAIM`, `KEFU_EVIDENCE_MIB_PER_CLAIM` | `RESOURCE_EXHAUSTED` naming the quota and its size (it never resets: a claim's evidence is kept); nothing is written |
//! | evidence one principal attaches in a day (the company's day: midnight to midnight in `KEFU_TIME_ZONE`, by the services' clock) | 200 files, 200 MiB | `KEFU_EVIDENCE_FILES_PER_DAY`, `KEFU_EVIDENCE_MIB_PER_DAY` | `RESOURCE_EXHAUSTED` naming the quota, its size and when it resets (the next midnight); nothing is written |
//!
//! The first two are kept here, on the accepted connections ([`incoming`]); the evidence quotas by
//! claims, counted and written in one transaction per claim and principal
//! ([`crate::db::serialize`]), so concurrent uploads never pass them; the others by the server
//! builder in [`crate::server::serve`] and the gateway's front door.

use std::{
    future::Future as _,
    io,
    pin::Pin,
    sync::Arc,
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
    pub handshake_timeout: Duration,
    pub calls_per_connection: usize,
    pub call_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub max_connection_age: Duration,
    /// Calls per second one principal may make at the gateway; bursts of twice as many.
    pub rate_per_principal: u32,
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
            handshake_timeout: Duration::from_secs(10),
            calls_per_connection: 256,
            call_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            max_connection_age: Duration::from_secs(30 * 60),
            rate_per_principal: 50,
            drain: Duration::from_secs(5),
            evidence: EvidenceQuota::default(),
        }
    }
}

/// The connections a listener accepts, at most `max_connections` open at once, each closed if it
/// sends nothing within the handshake timeout.
pub fn incoming(
    listener: TcpListener,
    limits: &Limits,
) -> impl Stream<Item = Result<Guarded, io::Error>> + Send + 'static {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let handshake = limits.handshake_timeout;
    futures_util::stream::unfold((listener, slots), move |(listener, slots)| async move {
        let Ok(slot) = slots.clone().acquire_owned().await else { return None };
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let guarded =
                        Guarded { stream, _slot: slot, handshake: Some(Box::pin(tokio::time::sleep(handshake))) };
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
    })
}

/// An accepted connection: holds its slot until it closes, and fails its first read if no byte
/// arrives before the handshake timeout.
pub struct Guarded {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    handshake: Option<Pin<Box<Sleep>>>,
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if read.is_ready() {
            if buf.filled().len() > before {
                self.handshake = None;
            }
            return read;
        }
        if let Some(deadline) = self.handshake.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "no handshake in time")));
        }
        Poll::Pending
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
    type ConnectInfo = <TcpStream as tonic::transport::server::Connected>::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
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

    /// Every channel kefu dials (to a service, to the gateway) is built with TCP_NODELAY.
    #[test]
    fn every_dialled_channel_sends_without_delay() {
        let endpoint = crate::server::endpoint("http://127.0.0.1:1").expect("a URL");
        assert!(endpoint.get_tcp_nodelay());
    }
}
