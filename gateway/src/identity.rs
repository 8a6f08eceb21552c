//! Who is calling. Today the gateway trusts the `x-kefu-*` identity headers the caller sends
//! (see `kefu_kit::caller` for the keys); a caller that sends none is `anonymous`. Authentication,
//! when it comes, replaces [`authenticate`] and nothing else: every call, whether the gateway
//! answers it or forwards it, passes through here, and whatever identity the caller claimed is
//! overwritten with the one established.

use http::HeaderMap;
use kefu_kit::caller::Caller;
use tonic::metadata::MetadataMap;

/// The identity of the caller of a request with these headers.
pub fn authenticate(headers: &HeaderMap) -> Caller {
    Caller::from_metadata(&MetadataMap::from_headers(headers.clone()))
}

/// Sets the established identity on the request's headers, replacing any the caller sent.
pub fn stamp(headers: &mut HeaderMap, caller: &Caller) {
    let mut metadata = MetadataMap::from_headers(std::mem::take(headers));
    caller.write_metadata(&mut metadata);
    *headers = metadata.into_headers();
}
