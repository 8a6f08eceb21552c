//! Case numbers (案件编号): unique under concurrency and across replicas, and easy to read out on
//! the phone. A case number is the registration date in the company's time zone and six characters
//! from an alphabet without look-alikes (no 0/O, 1/I/L, 2/Z, 5/S, 8/B): `20261122-7K3M9Q`.
//! Random characters need no coordination between replicas; the database's unique key catches the
//! rare collision, and the caller draws again.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

const ALPHABET: &[u8] = b"34679ACDEFGHJKMNPQRTUVWXY";
const RANDOM_LEN: usize = 6;

pub fn generate(now: DateTime<Utc>, time_zone: Tz) -> String {
    let date = now.with_timezone(&time_zone).format("%Y%m%d");
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..RANDOM_LEN]
        .iter()
        .map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()] as char)
        .collect();
    format!("{date}-{suffix}")
}

pub fn is_well_formed(number: &str) -> bool {
    let Some((date, suffix)) = number.split_once('-') else { return false };
    date.len() == 8
        && date.bytes().all(|b| b.is_ascii_digit())
        && suffix.len() == RANDOM_LEN
        && suffix.bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_carry_the_local_date_and_are_well_formed() {
        // 2026-11-22 17:30 UTC is already the 23rd in Shanghai.
        let now = DateTime::parse_from_rfc3339("2026-11-22T17:30:00Z").expect("valid").to_utc();
        let number = generate(now, chrono_tz::Asia::Shanghai);
        assert!(number.starts_with("20261123-"), "{number}");
        assert!(is_well_formed(&number), "{number}");
        assert!(!is_well_formed("20261123-0O1IL5"));
        assert!(!is_well_formed("2026112-7K3M9Q"));
    }

    #[test]
    fn draws_rarely_repeat() {
        let now = Utc::now();
        let numbers: std::collections::HashSet<String> =
            (0..10_000).map(|_| generate(now, chrono_tz::Asia::Shanghai)).collect();
        assert!(numbers.len() >= 9_990, "{} distinct of 10000", numbers.len());
    }
}
