//! Evidence (证据): photos and documents attached to a claim — damage photographed at once on
//! delivery (`004 §6.3.1`), the waybill (配送单), the shipping list (发货清单), invoices. Each is
//! kept whole with its SHA-256, so a file can later be shown to be the one that was attached.
//!
//! What one claim holds and what one principal attaches in a company day are bounded by the
//! quotas of `kit::limits` ([`EvidenceQuota`]: 50 files and 100 MiB a claim, 200 files and 200 MiB
//! a principal a day by default); [`admit`] is the rule, and the store counts and writes in one
//! transaction per claim and principal, so concurrent uploads never pass a quota.

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use kefu_kit::{error::FieldViolations, limits::EvidenceQuota};
use sha2::{Digest, Sha256};

/// The largest evidence accepted: 4 MiB, a phone photo or a scanned document.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
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

/// Evidence already counted against a quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

/// The quota a new piece of evidence would pass, with its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    FilesPerClaim(u64),
    BytesPerClaim(u64),
    FilesPerDay(u64),
    BytesPerDay(u64),
}

/// Whether one more file of `bytes` fits, beside what the claim holds (`claim`) and what its
/// uploader attached today (`today`); the first quota it would pass if not.
pub fn admit(quota: &EvidenceQuota, claim: Usage, today: Usage, bytes: u64) -> Result<(), Exceeded> {
    if claim.files >= quota.files_per_claim {
        Err(Exceeded::FilesPerClaim(quota.files_per_claim))
    } else if claim.bytes + bytes > quota.bytes_per_claim {
        Err(Exceeded::BytesPerClaim(quota.bytes_per_claim))
    } else if today.files >= quota.files_per_day {
        Err(Exceeded::FilesPerDay(quota.files_per_day))
    } else if today.bytes + bytes > quota.bytes_per_day {
        Err(Exceeded::BytesPerDay(quota.bytes_per_day))
    } else {
        Ok(())
    }
}

impl Exceeded {
    /// What the caller is told: which quota, its size, and when it resets (`resets`, the next
    /// midnight of the company's day, for the daily ones).
    pub fn message(&self, resets: DateTime<Tz>) -> String {
        let mib = |bytes: &u64| bytes.div_ceil(1024 * 1024);
        let kept = "it does not reset: a claim's evidence is kept";
        let next =
            format!("it resets at {} ({}, the start of the next day)", resets.to_rfc3339(), resets.timezone().name());
        match self {
            Exceeded::FilesPerClaim(max) => {
                format!(
                    "evidence quota per claim reached: the claim holds {max} files, the most one claim may hold; {kept}"
                )
            }
            Exceeded::BytesPerClaim(max) => format!(
                "evidence quota per claim reached: this file would take the claim over {} MiB ({max} bytes), the most one claim may hold; {kept}",
                mib(max)
            ),
            Exceeded::FilesPerDay(max) => format!(
                "evidence quota per principal per day reached: you attached {max} files today, the most one principal may attach in a day; {next}"
            ),
            Exceeded::BytesPerDay(max) => format!(
                "evidence quota per principal per day reached: this file would take what you attached today over {} MiB ({max} bytes), the most one principal may attach in a day; {next}",
                mib(max)
            ),
        }
    }

    /// Whether the quota is the uploader's of the day (else the claim's).
    pub fn is_daily(&self) -> bool {
        matches!(self, Exceeded::FilesPerDay(_) | Exceeded::BytesPerDay(_))
    }
}

/// The company's day holding `now`, midnight to midnight in `time_zone`, as the UTC instants it
/// runs between.
pub fn company_day(now: DateTime<Utc>, time_zone: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let date = now.with_timezone(&time_zone).date_naive();
    let midnight = |date: chrono::NaiveDate| {
        time_zone.from_local_datetime(&date.and_time(NaiveTime::MIN)).earliest().map(|time| time.with_timezone(&Utc))
    };
    let start = midnight(date).unwrap_or(now);
    let end = date.succ_opt().and_then(midnight).unwrap_or(now + chrono::Duration::days(1));
    (start, end)
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
    fn quotas_per_claim_and_per_principal_and_day() {
        let quota = EvidenceQuota { files_per_claim: 3, bytes_per_claim: 100, files_per_day: 5, bytes_per_day: 150 };
        let usage = |files, bytes| Usage { files, bytes };
        assert_eq!(admit(&quota, usage(2, 60), usage(4, 100), 40), Ok(()), "exactly at every limit");
        assert_eq!(admit(&quota, usage(3, 0), usage(0, 0), 1), Err(Exceeded::FilesPerClaim(3)));
        assert_eq!(admit(&quota, usage(2, 60), usage(0, 0), 41), Err(Exceeded::BytesPerClaim(100)));
        assert_eq!(admit(&quota, usage(0, 0), usage(5, 0), 1), Err(Exceeded::FilesPerDay(5)));
        assert_eq!(admit(&quota, usage(0, 0), usage(1, 120), 31), Err(Exceeded::BytesPerDay(150)));
    }

    #[test]
    fn a_daily_quota_resets_at_the_companys_midnight() {
        let shanghai = chrono_tz::Asia::Shanghai;
        // 2026-12-08 23:30 in Shanghai is 15:30 UTC: the day began at 16:00 UTC the day before.
        let now = "2026-12-08T15:30:00Z".parse::<DateTime<Utc>>().expect("a time");
        let (start, end) = company_day(now, shanghai);
        assert_eq!(
            (start.to_rfc3339(), end.to_rfc3339()),
            ("2026-12-07T16:00:00+00:00".into(), "2026-12-08T16:00:00+00:00".into())
        );
        let message = Exceeded::FilesPerDay(200).message(end.with_timezone(&shanghai));
        assert!(
            message.contains("200 files") && message.contains("2026-12-09T00:00:00+08:00 (Asia/Shanghai"),
            "{message}"
        );
        let message = Exceeded::BytesPerClaim(100 * 1024 * 1024).message(end.with_timezone(&shanghai));
        assert!(
            message.contains("per claim") && message.contains("100 MiB") && message.contains("does not reset"),
            "{message}"
        );
    }

    #[test]
    fn kind_and_file_name_are_checked() {
        let error =
            NewEvidence::parse("selfie".into(), "../x.jpg".into(), "image/jpeg".into(), b"\xFF\xD8\xFF".to_vec())
                .expect_err("invalid");
        assert_eq!(error.fields().collect::<Vec<_>>(), ["evidence.kind", "evidence.file_name"]);
    }
}
