//! Who is calling. Today the gateway trusts the `x-kefu-*` identity headers the caller sends
//! (see `kefu_kit::caller` for the keys); a caller that sends none is `anonymous`. Authentication,
//! when it comes, replaces [`authenticate`] and nothing else: every call, whether the gateway
//! answers it or forwards it, passes through here, and whatever identity the caller claimed is
//! overwritten with the one established.

use kefu_kit::caller::Caller;
use tonic::metadata::MetadataMap;

/// The identity of the caller of a request with this metadata.
pub fn authenticate(metadata: &MetadataMap) -> Caller {
    Caller::from_metadata(metadata)
}

/// Sets the established identity on the request's metadata, replacing any the caller sent.
pub fn stamp(metadata: &mut MetadataMap, caller: &Caller) {
    caller.write_metadata(metadata);
}
