//! Message times. The server cannot know the reader's time zone, so a
//! page is rendered with the time in UTC (in attributes only) and the
//! browser writes the local time once it runs: the server's HTML and the
//! hydrated page never disagree.
use chrono::{DateTime, SecondsFormat, Utc};

fn utc(at_ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(at_ms)
}

/// `2026-11-25T16:04:05.123Z`: the `datetime` attribute of a `<time>`.
/// Empty for a time out of range (never panics).
pub fn iso_utc(at_ms: i64) -> String {
    utc(at_ms).map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)).unwrap_or_default()
}

/// `16:04 UTC`: what a page without JavaScript shows.
pub fn utc_hm(at_ms: i64) -> String {
    utc(at_ms).map(|t| t.format("%H:%M UTC").to_string()).unwrap_or_default()
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
    }
}
