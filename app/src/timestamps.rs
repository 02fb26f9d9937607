//! Message times. The server cannot know the reader's time zone, so a
//! page is rendered with the time in UTC (in attributes only) and the
//! browser writes the local time once it runs: the server's HTML and the
//! hydrated page never disagree.

/// A UTC time broken into its fields; only years 0000–9999 (what four
/// digits can write).
#[derive(Debug, PartialEq, Eq)]
struct UtcTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    milli: u32,
}

/// Milliseconds since 1970 as a UTC date and time (the proleptic Gregorian
/// calendar, from days since the epoch by eras of 400 years).
fn utc(at_ms: i64) -> Option<UtcTime> {
    const MS_PER_DAY: i64 = 86_400_000;
    let days = at_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = at_ms.rem_euclid(MS_PER_DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // March = 0
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (0..=9999).contains(&year).then_some(UtcTime {
        year,
        month,
        day,
        hour: (ms_of_day / 3_600_000) as u32,
        minute: (ms_of_day / 60_000 % 60) as u32,
        second: (ms_of_day / 1000 % 60) as u32,
        milli: (ms_of_day % 1000) as u32,
    })
}

/// `2026-11-25T16:04:05.123Z`: the `datetime` attribute of a `<time>`.
/// Empty for a time out of range (never panics).
pub fn iso_utc(at_ms: i64) -> String {
    utc(at_ms)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year, t.month, t.day, t.hour, t.minute, t.second, t.milli
            )
        })
        .unwrap_or_default()
}

/// `16:04 UTC`: what a page without JavaScript shows.
pub fn utc_hm(at_ms: i64) -> String {
    utc(at_ms).map(|t| format!("{:02}:{:02} UTC", t.hour, t.minute)).unwrap_or_default()
}

/// A moment in words for a sentence: in the reader's zone once the page
/// runs (`local`), else in UTC as the server wrote it (a page's first
/// render in the browser must match the server's).
pub fn moment(at_ms: i64, local: bool) -> String {
    #[cfg(feature = "hydrate")]
    if local {
        return local::short(at_ms);
    }
    let _ = local;
    utc_hm(at_ms)
}

/// Browser side: the time in the reader's zone and language.
#[cfg(feature = "hydrate")]
pub mod local {
    use js_sys::{Date, Object, Reflect};
    use wasm_bindgen::JsValue;

    fn options(fields: &[(&str, &str)]) -> JsValue {
        let options = Object::new();
        for (key, value) in fields {
            let _ = Reflect::set(&options, &JsValue::from_str(key), &JsValue::from_str(value));
        }
        options.into()
    }

    fn language() -> String {
        web_sys::window().and_then(|w| w.navigator().language()).unwrap_or_else(|| "en".to_owned())
    }

    fn same_day(a: &Date, b: &Date) -> bool {
        a.get_full_year() == b.get_full_year()
            && a.get_month() == b.get_month()
            && a.get_date() == b.get_date()
    }

    /// `16:04` (or `4:04 PM`) today, `3 Jan, 16:04` on another day (local
    /// zone, the reader's language and clock).
    pub fn short(at_ms: i64) -> String {
        let at = Date::new(&JsValue::from_f64(at_ms as f64));
        let lang = language();
        let time: String =
            at.to_locale_time_string_with_options(&lang, &options(&[("timeStyle", "short")])).into();
        if same_day(&at, &Date::new_0()) {
            time
        } else {
            let day: String =
                at.to_locale_date_string(&lang, &options(&[("day", "numeric"), ("month", "short")])).into();
            format!("{day}, {time}")
        }
    }

    /// The full local date and time, for the tooltip.
    pub fn full(at_ms: i64) -> String {
        let at = Date::new(&JsValue::from_f64(at_ms as f64));
        let fields = [("dateStyle", "full"), ("timeStyle", "short")];
        at.to_locale_string(&language(), &options(&fields)).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rendered_in_utc_on_the_server() {
        assert_eq!(iso_utc(1_764_086_645_123), "2025-11-25T16:04:05.123Z");
        assert_eq!(utc_hm(1_764_086_645_123), "16:04 UTC");
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn a_time_out_of_range_renders_nothing() {
        assert_eq!(iso_utc(i64::MAX), "");
        assert_eq!(utc_hm(i64::MIN), "");
        assert_eq!(iso_utc(253_402_300_800_000), "", "year 10000");
        assert_eq!(iso_utc(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso_utc(-62_167_219_200_000), "0000-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(-62_167_219_200_001), "", "before year 0");
    }

    #[test]
    fn the_calendar_agrees_with_chrono_across_four_centuries_and_leap_days() {
        use chrono::{DateTime, SecondsFormat};
        let check = |at_ms: i64| {
            let expected =
                DateTime::from_timestamp_millis(at_ms).unwrap().to_rfc3339_opts(SecondsFormat::Millis, true);
            assert_eq!(iso_utc(at_ms), expected, "{at_ms}");
        };
        // Every day from 1900 to 2300 at a time that moves through the day,
        // and the moments around midnight of a few leap days.
        let (start, end) = (-2_208_988_800_000_i64, 10_413_792_000_000_i64);
        let mut at = start;
        while at < end {
            check(at);
            at += 86_400_000 + 3_723_457;
        }
        for leap_day in ["2000-02-29T00:00:00Z", "2024-02-29T23:59:59Z", "1904-02-29T12:00:00Z"] {
            let ms = DateTime::parse_from_rfc3339(leap_day).unwrap().timestamp_millis();
            for delta in [-1, 0, 1, 999, 86_400_000] {
                check(ms + delta);
            }
        }
        check(-1);
    }
}
