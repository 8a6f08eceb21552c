//! Evidence (证据): photos and documents attached to a claim — damage photographed at once on
//! delivery (`004 §6.3.1`), the waybill (配送单), the shipping list (发货清单), invoices. Each is
//! kept whole with its SHA-256, so a file can later be shown to be the one that was attached.

use kefu_kit::error::FieldViolations;
use sha2::{Digest, Sha256};

/// The largest evidence accepted: 4 MiB, a phone photo or a scanned document.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// The most evidence one claim may hold.
pub const MAX_PER_CLAIM: u64 = 50;
pub const KINDS: [&str; 6] = ["photo", "waybill", "shipping_list", "invoice", "report", "other"];
/// The media types accepted, each with the bytes its content must start with.
const MEDIA_TYPES: [(&str, &[u8]); 4] = [
    ("image/jpeg", b"\xFF\xD8\xFF"),
    ("image/png", b"\x89PNG\r\n\x1A\n"),
    ("image/webp", b"RIFF"),
    ("application/pdf", b"%PDF-"),
];

/// Evidence as a caller attaches it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvidence {
    pub kind: String,
    pub file_name: String,
    pub media_type: String,
    pub content: Vec<u8>,
    pub sha256: String,
}

impl NewEvidence {
    pub fn parse(
        kind: String,
        file_name: String,
        media_type: String,
        content: Vec<u8>,
    ) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        if !KINDS.contains(&kind.as_str()) {
            violations.add("evidence.kind", format!("one of {}", KINDS.join(", ")));
        }
        if file_name.trim().is_empty() || file_name.chars().count() > 255 || file_name.contains(['/', '\\']) {
            violations.add("evidence.file_name", "required: a file name without folders, at most 255 characters");
        }
        match MEDIA_TYPES.iter().find(|(name, _)| *name == media_type) {
            None => violations.add(
                "evidence.media_type",
                format!("{media_type:?} is not accepted; use one of {}", MEDIA_TYPES.map(|(name, _)| name).join(", ")),
            ),
            Some((_, magic)) if !content.is_empty() && !is_of_type(&media_type, magic, &content) => violations
                .add("evidence.content", format!("the content is not {media_type}: its first bytes do not match")),
            Some(_) => {}
        }
        if content.is_empty() {
            violations.add("evidence.content", "required: the file's bytes");
        } else if content.len() > MAX_BYTES {
            violations.add(
                "evidence.content",
                format!(
                    "{} bytes is over the limit of {MAX_BYTES} bytes (4 MiB); send a smaller photo or scan",
                    content.len()
                ),
            );
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        let sha256 = kefu_kit::text::hex(&Sha256::digest(&content));
        Ok(NewEvidence { kind, file_name, media_type, content, sha256 })
    }
}

fn is_of_type(media_type: &str, magic: &[u8], content: &[u8]) -> bool {
    content.starts_with(magic) && (media_type != "image/webp" || content.get(8..12) == Some(b"WEBP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(media_type: &str, content: &[u8]) -> Result<NewEvidence, Vec<String>> {
        NewEvidence::parse("photo".into(), "damage.jpg".into(), media_type.into(), content.to_vec())
            .map_err(|violations| violations.fields().map(str::to_owned).collect())
    }

    #[test]
    fn evidence_is_kept_with_its_sha256() {
        let evidence = parse("application/pdf", b"%PDF-1.7 abc").expect("valid");
        // sha256("%PDF-1.7 abc"), computed independently with `printf '%%PDF-1.7 abc' | sha256sum`.
        assert_eq!(evidence.sha256, "baad13769b56aaeb5b072762fefe73bc572a131353d594ec2db2b382bfabadfa");
        assert_ne!(parse("application/pdf", b"%PDF-1.7 abd").expect("valid").sha256, evidence.sha256);
    }

    #[test]
    fn the_type_must_be_accepted_and_match_the_content() {
        assert_eq!(parse("image/gif", b"GIF89a").expect_err("gif"), ["evidence.media_type"]);
        assert_eq!(parse("image/png", b"\xFF\xD8\xFF\xE0").expect_err("a jpeg called png"), ["evidence.content"]);
        assert!(parse("image/jpeg", b"\xFF\xD8\xFF\xE0").is_ok());
        assert!(parse("image/webp", b"RIFF\0\0\0\0WEBPVP8 ").is_ok());
        assert_eq!(parse("image/webp", b"RIFF\0\0\0\0WAVE").expect_err("a wav"), ["evidence.content"]);
        assert_eq!(parse("image/jpeg", b"").expect_err("empty"), ["evidence.content"]);
    }

    #[test]
    fn the_size_is_limited() {
        let mut big = b"%PDF-".to_vec();
        big.resize(MAX_BYTES, b' ');
        assert!(parse("application/pdf", &big).is_ok(), "exactly the limit is accepted");
        big.push(b' ');
        assert_eq!(parse("application/pdf", &big).expect_err("one byte over"), ["evidence.content"]);
    }

    #[test]
    fn kind_and_file_name_are_checked() {
        let error =
            NewEvidence::parse("selfie".into(), "../x.jpg".into(), "image/jpeg".into(), b"\xFF\xD8\xFF".to_vec())
                .expect_err("invalid");
        assert_eq!(error.fields().collect::<Vec<_>>(), ["evidence.kind", "evidence.file_name"]);
    }
}
