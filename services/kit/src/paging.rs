//! AIP-158 pagination. A page token is opaque to callers; inside it is the position after the last
//! item returned and a fingerprint of the filter, so a token is refused with a different filter.

use crate::error::FieldViolations;

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;

/// The page size to use: 0 means the default, more than the maximum is capped, negative is refused.
pub fn page_size(requested: i32) -> Result<u64, FieldViolations> {
    match requested {
        n if n < 0 => Err(FieldViolations::of("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as u64).min(MAX_PAGE_SIZE)),
    }
}

/// The position (a row's sequence number) a token stands for; `None` for the first page.
pub fn decode_token(token: &str, filter: &str) -> Result<Option<i64>, FieldViolations> {
    if token.is_empty() {
        return Ok(None);
    }
    let refuse = || FieldViolations::of("page_token", "not a token from an earlier call with this filter");
    let text = String::from_utf8(hex_decode(token).ok_or_else(refuse)?).map_err(|_| refuse())?;
    let (position, fingerprint) = text.split_once(':').ok_or_else(refuse)?;
    if fingerprint != filter_fingerprint(filter) {
        return Err(refuse());
    }
    position.parse::<i64>().map(Some).map_err(|_| refuse())
}

/// Splits the `page_size + 1` rows a query fetched into the page and the position to continue
/// from: there is a next page exactly when the extra row came back.
pub fn take_page<T>(mut rows: Vec<T>, page_size: u64, position: impl Fn(&T) -> i64) -> (Vec<T>, Option<i64>) {
    if rows.len() as u64 > page_size {
        rows.truncate(page_size as usize);
        let next = rows.last().map(position);
        (rows, next)
    } else {
        (rows, None)
    }
}

pub fn encode_token(position: i64, filter: &str) -> String {
    crate::text::hex(format!("{position}:{}", filter_fingerprint(filter)).as_bytes())
}

/// FNV-1a: stable across builds and processes, unlike `std`'s hasher.
fn filter_fingerprint(filter: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in filter.trim().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() > 256 {
        return None;
    }
    crate::text::unhex(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_only_with_its_filter() {
        let token = encode_token(42, "branch = \"SH01\"");
        assert_eq!(decode_token(&token, "branch = \"SH01\"").ok(), Some(Some(42)));
        assert!(decode_token(&token, "branch = \"BJ02\"").is_err());
        assert!(decode_token("zz", "").is_err());
        assert_eq!(decode_token("", "").ok(), Some(None));
    }

    #[test]
    fn page_size_bounds() {
        assert_eq!(page_size(0).ok(), Some(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(10_000).ok(), Some(MAX_PAGE_SIZE));
        assert!(page_size(-1).is_err());
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// A token says where the next page starts, for its filter only; anything else a caller
        /// sends as a token is INVALID_ARGUMENT naming page_token, never a panic or another page.
        #[test]
        fn page_tokens_round_trip_and_nothing_else_is_one(position in any::<i64>(), filter in ".{0,40}", other in ".{0,40}", junk in ".{0,80}") {
            prop_assert_eq!(decode_token(&encode_token(position, &filter), &filter).ok(), Some(Some(position)));
            if other.trim() != filter.trim() {
                prop_assert!(decode_token(&encode_token(position, &filter), &other).is_err());
            }
            match decode_token(&junk, &filter) {
                Ok(Some(_)) | Ok(None) => {}
                Err(violations) => prop_assert_eq!(violations.fields().collect::<Vec<_>>(), ["page_token"]),
            }
        }
    }
}
