//! Case numbers (案件编号): unique under concurrency and across replicas, and easy to read out on
//! the phone. A case number is the registration date in the company's time zone and six characters
//! from an alphabet without look-alikes (no 0/O, 1/I/L, 2/Z, 5/S, 8/B): `20261122-7K3M9Q`.
//! Random characters need no coordination between replicas; the database's unique key catches the
//! rare collision, and the caller draws again.
//!
//! The first of the six characters is not drawn but read off the clock: the ten-second span of the
//! day, counted round the alphabet's 25 characters (00:00:00–00:00:09 is `3`, 00:00:10 `4`, …, and
//! `3` again from 00:04:10). The other five are drawn: 9.8 million numbers per character, so a
//! number is as hard to guess as a name on a list of ten million. Why not all six: every
//! department keeps its cases, their histories and replies in B-tree indexes by case number, and
//! six random characters put each new case at a random place in every one of them. Once those
//! indexes outgrow the database's buffers (PostgreSQL's default 128 MB), nearly every registration
//! reads a page of each from the operating system, evicts a dirty one, and writes the page whole
//! into the log after each checkpoint: a ten-minute run at full load lost 17% from its first minute
//! to its last. With the first character fixed for ten seconds, the cases registered meanwhile fall
//! into one twenty-fifth of each index, which is read once and then stays in memory
//! (docs/benchmarks.md, "Issue 20, seventh round"). Collisions stay as rare as before: after four
//! minutes a day's numbers are spread over all 25 characters as evenly as drawn ones would be.
//!
//! That twenty-fifth holds a twenty-fifth of all the day's cases so far, so it grows through the
//! day, and after each checkpoint the first change to each of its pages is logged whole: after six
//! million complaints in a day, 12 KB of WAL per complaint against 8 on a fresh database, with no
//! loss in speed. The date in front starts a new one at midnight (docs/benchmarks.md, "Issue 20,
//! eleventh round").

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

const ALPHABET: &[u8] = b"34679ACDEFGHJKMNPQRTUVWXY";
const SUFFIX_LEN: usize = 6;

pub fn generate(now: DateTime<Utc>, time_zone: Tz) -> String {
    let local = now.with_timezone(&time_zone);
    let date = local.format("%Y%m%d");
    let span_of_day = (local.num_seconds_from_midnight() / 10) as usize;
    let random = uuid::Uuid::new_v4();
    let drawn = random.as_bytes()[..SUFFIX_LEN - 1].iter().map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()]);
    let suffix: String = std::iter::once(ALPHABET[span_of_day % ALPHABET.len()]).chain(drawn).map(char::from).collect();
    format!("{date}-{suffix}")
}

pub fn is_well_formed(number: &str) -> bool {
    let Some((date, suffix)) = number.split_once('-') else { return false };
    date.len() == 8
        && date.bytes().all(|b| b.is_ascii_digit())
        && suffix.len() == SUFFIX_LEN
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
    fn the_first_character_is_the_ten_seconds_of_the_day_round_the_alphabet() {
        let shanghai = chrono_tz::Asia::Shanghai;
        let at = |rfc3339: &str| DateTime::parse_from_rfc3339(rfc3339).expect("valid").to_utc();
        let first = |number: String| number.split_once('-').expect("a dash").1.as_bytes()[0];
        // Local midnight, its last second of the first span, the second span, and 250 seconds on
        // (round the alphabet once).
        assert_eq!(first(generate(at("2026-11-27T16:00:00Z"), shanghai)), b'3');
        assert_eq!(first(generate(at("2026-11-27T16:00:09Z"), shanghai)), b'3');
        assert_eq!(first(generate(at("2026-11-27T16:00:10Z"), shanghai)), b'4');
        assert_eq!(first(generate(at("2026-11-27T16:04:10Z"), shanghai)), b'3');
        // 23:59:59 is span 8639 of the day, 8639 % 25 = 14: the alphabet's fifteenth character.
        assert_eq!(first(generate(at("2026-11-28T15:59:59Z"), shanghai)), b'M');
    }

    #[test]
    fn draws_rarely_repeat() {
        // Ten thousand draws in one ten-second span share its first character: five drawn
        // characters, 9.8 million numbers, so about five repeats are expected (10,000² / 2 / 9.8
        // million); more than thirty has a chance below one in a billion.
        let now = Utc::now();
        let numbers: std::collections::HashSet<String> =
            (0..10_000).map(|_| generate(now, chrono_tz::Asia::Shanghai)).collect();
        assert!(numbers.len() >= 9_970, "{} distinct of 10000", numbers.len());
    }
}
