//! Small checks and encodings of text that several services share.

/// Whether `text` is a code: 1 to `max` ASCII letters, digits, `-` or `_` (customer numbers,
/// waybill numbers, branch codes).
pub fn is_code(text: &str, max: usize) -> bool {
    !text.is_empty() && text.len() <= max && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The longest branch office code.
pub const MAX_BRANCH: usize = 16;

/// What a branch office code is, for messages: every place a branch code enters kefu (a token's
/// branch, a complaint's or request's, a webhook's, a filter's, a waybill's, an audit's) checks it
/// with [`is_branch`] and says this when it is not one.
pub const BRANCH_RULE: &str = "a branch office code of 1 to 16 ASCII letters, digits, - or _, e.g. SH01";

/// Whether `text` is a branch office code: [`is_code`] of at most [`MAX_BRANCH`]. No quotes, markup,
/// spaces or bidirectional controls (U+202E), so a branch code is safe in a page, a CSV, a filter
/// and a log line as it is.
pub fn is_branch(text: &str) -> bool {
    is_code(text, MAX_BRANCH)
}

/// Lower-case hexadecimal, two digits a byte (how digests are shown). Every internal call's
/// signature is written with it, so it allocates once, not once a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// The bytes of lower- or upper-case hexadecimal; `None` if it is not that.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_hex() {
        assert_eq!(unhex(&hex(&[0, 15, 255])), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("é0"), None);
        assert!(is_code("SH01-a_2", 8));
        assert!(!is_code("SH01-a_2", 7));
        assert!(!is_code("", 8));
        assert!(!is_code("C 1", 8));
        assert!(is_branch("SH01") && is_branch("branch-SH01_tms") && !is_branch("SH01-0123456789ab"));
        for hostile in ["SH\"01", "<b>SH01</b>", "SH\u{202E}01", "SH 01", "SH01\n", "ＳＨ01", ""] {
            assert!(!is_branch(hostile), "{hostile:?}");
        }
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(hex(&[0x1a, 0xb2, 0x90]), "1ab290");
        let every: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&every)), Some(every));
    }
}
