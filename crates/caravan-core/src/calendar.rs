//! UTC dates from the Unix epoch and back, for what people read (days on a usage chart,
//! times on a page, a sign-in message's timestamps): the proleptic Gregorian calendar by
//! Howard Hinnant's algorithms, exact for every `i64` day count the node can meet.

/// Milliseconds in a UTC day.
pub const DAY_MS: u64 = 86_400_000;

/// Days since 1970-01-01 of the date `year`-`month`-`day` (month and day from 1).
pub fn days_from_civil(year: i64, month: u64, day: u64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = month as i64;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month, day) `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `day` (days since the Unix epoch) as `2026-12-06`.
pub fn utc_date(day: u64) -> String {
    let (year, month, day) = civil_from_days(day as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Milliseconds since the Unix epoch as `2026-12-06 14:03 UTC`.
pub fn utc_minute(ms: u64) -> String {
    let minute_of_day = (ms % DAY_MS) / 60_000;
    format!(
        "{} {:02}:{:02} UTC",
        utc_date(ms / DAY_MS),
        minute_of_day / 60,
        minute_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(11_016), "2000-02-29");
        assert_eq!(utc_date(20_793), "2026-12-06");
        assert_eq!(utc_minute(1_796_569_080_000), "2026-12-06 14:58 UTC");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    proptest::proptest! {
        #[test]
        fn days_and_dates_round_trip(days in -1_000_000i64..10_000_000) {
            let (year, month, day) = civil_from_days(days);
            proptest::prop_assert!((1..=12).contains(&month) && (1..=31).contains(&day));
            proptest::prop_assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
