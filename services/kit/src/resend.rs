//! A call its connection never sent is sent again, on the next connection.
//!
//! Every kefu server retires a connection at its age (`KEFU_MAX_CONNECTION_AGE`, see
//! [`crate::limits`]) with an HTTP/2 GOAWAY: the calls in flight on it finish, and new calls are to
//! go to a new connection. tonic's client learns of the GOAWAY only when it hands that connection
//! its next call, and that call is then refused before a byte of it is sent: hyper drops it
//! (`operation was canceled`), or h2 will not open its stream (a GOAWAY error, or the server's
//! `REFUSED_STREAM`). Only then does the channel connect anew. At 64 callers with a ten-second age
//! that was 49 failed calls a minute (docs/benchmarks.md, "eighth round").
//!
//! A call refused so never reached the server, so sending it again changes nothing twice, whether
//! or not it carries a request id; gRPC's own clients do the same ("transparent retry").
//! [`Resending`] wraps a channel to do it: it reads each request's message into memory first
//! (every kefu call is unary, one message each way) and sends a call refused unsent again, up to
//! [`ATTEMPTS`] times in all. Any other failure — a connection lost with the call on it, a
//! timeout — is the caller's to see, as before: such a call may have been served.

use std::{
    error::Error as StdError,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, Response};
use http_body_util::BodyExt;
use tonic::{body::Body, transport::Channel};
use tower::{BoxError, Service, ServiceExt};

/// How many times a call is sent at most, the first included.
pub const ATTEMPTS: usize = 3;

/// A channel that sends again a call its connection refused unsent.
#[derive(Clone, Debug)]
pub struct Resending {
    channel: Channel,
}

impl Resending {
    pub fn new(channel: Channel) -> Resending {
        Resending { channel }
    }
}

impl Service<Request<Body>> for Resending {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Service::poll_ready(&mut self.channel, cx).map_err(BoxError::from)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The channel `poll_ready` made ready takes the call; a clone stays for the next one.
        let ready = self.channel.clone();
        let mut channel = std::mem::replace(&mut self.channel, ready);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let message = body.collect().await?.to_bytes();
            let request = || {
                let mut request = Request::new(Body::new(http_body_util::Full::new(message.clone())));
                *request.method_mut() = parts.method.clone();
                *request.uri_mut() = parts.uri.clone();
                *request.version_mut() = parts.version;
                *request.headers_mut() = parts.headers.clone();
                *request.extensions_mut() = parts.extensions.clone();
                request
            };
            let mut outcome = channel.call(request()).await;
            for _ in 1..ATTEMPTS {
                match &outcome {
                    Err(error) if never_sent(error) => {
                        outcome = channel.ready().await.map_err(BoxError::from)?.call(request()).await;
                    }
                    _ => break,
                }
            }
            Ok(outcome?)
        })
    }
}

/// Whether `error` says the call was refused before it was served: hyper dropped it unsent, h2
/// would not open its stream because the server said GOAWAY (or the stream came after the last
/// one the server said it took), or the server refused the stream (`REFUSED_STREAM`: by HTTP/2's
/// rule, not processed).
pub fn never_sent(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(hyper) = error.downcast_ref::<hyper::Error>()
            && hyper.is_canceled()
        {
            return true;
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            // A GOAWAY with an error code ends the streams the server did take as well; only a
            // graceful one (NO_ERROR) is given to streams it never took, and to new ones.
            let graceful_go_away = h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
            return graceful_go_away || h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        next = error.source();
    }
    false
}
